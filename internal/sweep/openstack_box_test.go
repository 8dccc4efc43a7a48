package sweep_test

import (
	"context"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/openstack"
	"github.com/vmglue/vmglue/internal/bridge"
	"github.com/vmglue/vmglue/internal/nova"
	"github.com/vmglue/vmglue/internal/sweep"
	"github.com/vmglue/vmglue/internal/testenv"
)

// TestOpenStackBox sweeps the real test OpenStack through a clouds.yaml
// entry, with no bridge running: the servers booted without vmglue are
// published as Nova reports them, over pages smaller than the server count;
// a second sweep publishes nothing; a sweep with the credentials of another
// project (a member, not an admin) never touches them; a server deleted in
// Nova is deleted after missing_sweeps sweeps.
func TestOpenStackBox(t *testing.T) {
	e := newEnv(t)
	b := newBox(t)
	booted := b.boot(t, "sweep-"+testenv.RandomName(t), 3, map[string]string{"role": "web"})
	ids := make([]string, len(booted))
	for i, srv := range booted {
		ids[i] = srv.ID
	}
	s := b.sweeper(t, e, "lab", 2, "")

	r, err := e.run(s, sweep.Mode{})
	if err != nil || r.Listed < len(ids) {
		t.Fatalf("first sweep: %+v %v; want at least the %d servers listed", r, err, len(ids))
	}
	if got := actionsOn(r, ids...); len(got) != len(ids) {
		t.Fatalf("first sweep: actions on the booted servers %+v; want %d new", got, len(ids))
	}
	for _, srv := range booted {
		ev := e.lastEvent(srv.ID)
		if ev.Type != "vm.running" || ev.Source != "openstack://"+osCloud || ev.Origin != eventbus.OriginSweep {
			t.Errorf("event of %s: type %s, source %s, origin %s", srv.ID, ev.Type, ev.Source, ev.Origin)
		}
		now, err := servers.Get(context.Background(), b.compute, srv.ID).Extract()
		if err != nil {
			t.Fatal(err)
		}
		sameAsNova(t, &ev.Data, now)
	}
	if r, err = e.run(s, sweep.Mode{}); err != nil || len(actionsOn(r, ids...)) != 0 {
		t.Fatalf("second sweep: %+v %v; want nothing on the booted servers", r, err)
	}

	// Another project's member sees none of them: its sweeps of the same
	// cloud conclude nothing about them, however often they run; its own
	// server is published, known, and deleted after missing_sweeps.
	tc := b.tenant(t, "tenant")
	own := b.stack.WaitStatus(t, tc, b.stack.Create(t, tc, "tenant-"+testenv.RandomName(t), nil), "ACTIVE")
	ts := b.sweeper(t, e, "tenant", 2, "")
	for i, want := range []struct {
		known int
		what  string
	}{{0, sweep.ActionNew}, {1, ""}, {1, ""}} {
		r, err := e.run(ts, sweep.Mode{})
		got := actionsOn(r, append(ids, own.ID)...)
		if err != nil || r.Known != want.known || want.what == "" && len(got) != 0 ||
			want.what != "" && (len(got) != 1 || got[0].VM != own.ID || got[0].What != want.what) {
			t.Fatalf("sweep %d of the other project: %+v %v; want %d known, %q on its server only", i+1, r, err, want.known, want.what)
		}
	}
	if p := e.lastEvent(own.ID).Data.Project; p != own.TenantID || p == booted[0].TenantID {
		t.Fatalf("the other project's server published in project %q, Nova says %q", p, own.TenantID)
	}
	if err := servers.Delete(context.Background(), tc, own.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	b.stack.WaitStatus(t, tc, own.ID, "DELETED")
	for i, want := range []string{sweep.ActionMissing, sweep.ActionDeleted} {
		r, err := e.run(ts, sweep.Mode{})
		got := actionsOn(r, append(ids, own.ID)...)
		if err != nil || len(got) != 1 || got[0].VM != own.ID || got[0].What != want {
			t.Fatalf("sweep %d of the other project after its delete: %+v %v; want %s %s only", i+1, got, err, want, own.ID)
		}
	}
	if n := len(e.absences()); n != 0 {
		t.Fatalf("the other project's sweeps left %d absences", n)
	}

	if err := servers.Delete(context.Background(), b.compute, ids[0]).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	b.stack.WaitStatus(t, b.compute, ids[0], "DELETED")
	for i, want := range []string{sweep.ActionMissing, sweep.ActionDeleted} {
		r, err := e.run(s, sweep.Mode{})
		got := actionsOn(r, ids...)
		if err != nil || len(got) != 1 || got[0].VM != ids[0] || got[0].What != want {
			t.Fatalf("sweep %d after the delete: %+v %v; want %s %s only", i+1, got, err, want, ids[0])
		}
	}
	ev := e.lastEvent(ids[0])
	v4, _, _ := novaAddress(t, booted[0])
	if ev.Type != "vm.deleted" || len(ev.Data.NICs) != 1 || ev.Data.NICs[0].IP != v4 {
		t.Fatalf("delete event %+v", ev)
	}
}

// TestOpenStackBridgeThenSweep: the Nova bridge publishes a server's
// notifications, then a sweep of the same cloud finds nothing new about it
// (the bridge's and the sweep's mappings of one server agree: ids, version,
// content, the name taken from the hostname by both), neither while it
// runs, nor stopped, nor once it is deleted.
func TestOpenStackBridgeThenSweep(t *testing.T) {
	e := newEnv(t)
	b := newBox(t)
	startBridge(t, e, b, openstack.NameHostname)
	s := b.sweeper(t, e, "lab", 0, openstack.NameHostname)

	srv := b.boot(t, "Bridged DB_"+testenv.RandomName(t), 1, map[string]string{"role": "db"})[0]
	e.awaitBridged(t, b, srv.ID, eventbus.KindRunning)
	if vm := e.snapshotIn(osCloud, srv.ID); vm.Name == srv.Name || vm.Name != vm.Hostname {
		t.Fatalf("the bridge named %q (hostname %q) the server %q: want its hostname", vm.Name, vm.Hostname, srv.Name)
	}
	r, err := e.run(s, sweep.Mode{})
	if got := actionsOn(r, srv.ID); err != nil || len(got) != 0 {
		t.Fatalf("sweep after the bridge: %+v %v; want nothing about %s; snapshot %+v", got, err, srv.ID, e.snapshotIn(osCloud, srv.ID))
	}
	listed, found, err := nova.New(nova.Options{Cloud: osCloud, OSCloud: "lab", CloudsFile: b.clouds}).Get(context.Background(), srv.ID)
	if err != nil || !found {
		t.Fatalf("Nova's API on %s: found %v, %v", srv.ID, found, err)
	}
	if got, want := nicIDs(e.snapshotIn(osCloud, srv.ID).NICs), nicIDs(listed.NICs); got != want || want == "" {
		t.Fatalf("NICs (id network mac) of the bridge %q, of Nova's API %q: want the same", got, want)
	}

	if err := servers.Stop(context.Background(), b.compute, srv.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	b.stack.WaitStatus(t, b.compute, srv.ID, "SHUTOFF")
	e.awaitBridged(t, b, srv.ID, eventbus.KindStopped)
	if r, err = e.run(s, sweep.Mode{}); err != nil || len(actionsOn(r, srv.ID)) != 0 {
		t.Fatalf("sweep after the bridge's stop: %+v %v; want nothing about %s", actionsOn(r, srv.ID), err, srv.ID)
	}

	if err := servers.Delete(context.Background(), b.compute, srv.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	b.stack.WaitStatus(t, b.compute, srv.ID, "DELETED")
	testenv.WaitFor(t, time.Minute, "the bridge's delete of "+srv.ID, func() bool {
		e.merge()
		vm := e.snapshotIn(osCloud, srv.ID)
		return vm != nil && vm.Deleted()
	})
	for i := range sweep.DefaultMissingSweeps + 1 {
		if r, err = e.run(s, sweep.Mode{}); err != nil || len(actionsOn(r, srv.ID)) != 0 {
			t.Fatalf("sweep %d after the bridge's delete: %+v %v; want nothing about %s", i+1, actionsOn(r, srv.ID), err, srv.ID)
		}
	}
}

// startBridge runs `vmglue bridge openstack` for osCloud on the box's
// RabbitMQ (a queue of its own) and the env's NATS until the test ends;
// name is its name option.
func startBridge(t *testing.T, e *env, b *box, name string) {
	t.Helper()
	queue := "vmglue-sweep-" + testenv.RandomName(t)
	cfg := bridge.Config{Cloud: osCloud, Name: name, AMQP: bridge.AMQPConfig{URLs: []string{b.stack.AMQPURL}, Queue: queue}, SpoolDir: t.TempDir()}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.DeleteQueue(t, b.stack.AMQPURL, queue) })
	ctx, cancel := context.WithCancel(context.Background())
	done, ready := make(chan error, 1), make(chan struct{})
	go func() {
		done <- bridge.RunApp(ctx, bridge.AppOptions{Config: cfg, NATS: eventbus.ConnOptions{URL: e.url},
			Ready: func(string) { close(ready) }}, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("bridge: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("bridge exited: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("bridge not ready after 1m")
	}
}

// awaitBridged waits until vmglue's snapshot of the server, merged from the
// bridge's events, has the server's state with no task under way and its
// addresses: the notifications of its last change arrived. (Not its
// updated_at: Nova moves it after the last notification.)
func (e *env) awaitBridged(t *testing.T, b *box, id, kind string) {
	t.Helper()
	srv, err := servers.Get(context.Background(), b.compute, id).Extract()
	if err != nil {
		t.Fatal(err)
	}
	v4, _, _ := novaAddress(t, srv)
	testenv.WaitFor(t, time.Minute, "the bridge's "+kind+" snapshot of "+id, func() bool {
		e.merge()
		vm := e.snapshotIn(osCloud, id)
		return vm != nil && vm.Kind == kind && vm.LCMState == "" && len(vm.NICs) > 0 && vm.NICs[0].IP == v4
	})
}

// nicIDs lists the id, network and MAC of the NICs.
func nicIDs(nics []eventbus.NIC) string {
	var out string
	for _, n := range nics {
		out += n.ID + " " + n.Network + " " + n.MAC + "; "
	}
	return out
}
