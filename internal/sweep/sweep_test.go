package sweep_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/hooks/delivery"
	"github.com/vmglue/vmglue/hooks/opennebula"
	"github.com/vmglue/vmglue/hooks/opennebula/api"
	"github.com/vmglue/vmglue/hooks/opennebula/api/apitest"
	"github.com/vmglue/vmglue/hooks/spool"
	"github.com/vmglue/vmglue/internal/sweep"
	"github.com/vmglue/vmglue/internal/testenv"
)

// TestBootedWhileOff: VMs that booted while serve and the hook were off are
// published by the first sweep, marked as the sweep's; the next sweep, with
// nothing changed but the monitoring's LAST_POLL, publishes nothing.
func TestBootedWhileOff(t *testing.T) {
	e := newEnv(t)
	e.loadLive()
	r, err := e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{})
	if err != nil {
		t.Fatal(err)
	}
	evs := e.events()
	if r.New != len(liveIDs) || r.Published() != len(liveIDs) || len(evs) != len(liveIDs) {
		t.Fatalf("result %+v, %d events stored, want %d new", r, len(evs), len(liveIDs))
	}
	for i, ev := range evs {
		if ev.Origin != eventbus.OriginSweep || ev.Data.ID != liveIDs[i] {
			t.Errorf("event %d: vm %s origin %q, want vm %s origin sweep", i, ev.Data.ID, ev.Origin, liveIDs[i])
		}
	}
	// oned's monitoring polls the VMs: LAST_POLL moves, nothing else.
	doc := corpus(t, "vm-poweroff-1nic-snapshot.xml")
	if err := e.one.SetVM(strings.Replace(doc, "<LAST_POLL>1518861446<", "<LAST_POLL>1518869999<", 1)); err != nil {
		t.Fatal(err)
	}
	r, err = e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Published() != 0 || len(e.events()) != len(liveIDs) || r.Listed != len(liveIDs) || r.Known != len(liveIDs) {
		t.Fatalf("second sweep: %+v, %d events stored; want nothing published", r, len(e.events()))
	}
	// VM 621 was started while the hook was off.
	running := strings.Replace(strings.Replace(doc, "<STATE>8</STATE>", "<STATE>3</STATE>", 1), "<LCM_STATE>0</LCM_STATE>", "<LCM_STATE>3</LCM_STATE>", 1)
	if err := e.one.SetVM(running); err != nil {
		t.Fatal(err)
	}
	r, err = e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Changed != 1 || r.Published() != 1 || e.snapshot("621").Kind != eventbus.KindRunning {
		t.Fatalf("third sweep: %+v, snapshot %+v; want 621 changed to running", r, e.snapshot("621"))
	}
	if a := r.Actions; len(a) != 1 || a[0].Detail != "stopped -> running" {
		t.Fatalf("actions %+v", a)
	}
}

// TestHookAndSweepDedup: the hook and the sweep that see the same VM
// document make the same event id, and the stream stores it once.
func TestHookAndSweepDedup(t *testing.T) {
	e := newEnv(t)
	e.loadLive()
	doc := corpus(t, "vm-undeployed-1nic-labels.xml") // 13 HISTORY records; the pool has the last
	vm, err := opennebula.ParseVM([]byte(doc), cloud)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := eventbus.NewEvent(vm)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := eventbus.Publish(ctx, e.js, &ev); err != nil {
		t.Fatal(err)
	}
	// The sweep runs before any worker merged the hook's event.
	s := e.sweeper(sweep.Options{}, nil)
	r, err := s.Run(ctx, sweep.Mode{})
	if err != nil {
		t.Fatal(err)
	}
	if r.New != len(liveIDs) || r.Duplicates != 1 {
		t.Fatalf("result %+v, want %d new of which 1 duplicate", r, len(liveIDs))
	}
	n := 0
	for _, got := range e.events() {
		if got.Data.ID == "595" {
			n++
			if got.ID != ev.ID || got.Origin != "" {
				t.Errorf("stored %s origin %q, want the hook's %s", got.ID, got.Origin, ev.ID)
			}
		}
	}
	if n != 1 {
		t.Fatalf("VM 595 stored %d times, want once", n)
	}
}

// TestDeletedWhileOff: a VM deleted while serve and the hook were off is
// deleted after two sweeps, not one; the count survives a restart (a new
// Sweeper each time). oned may still have the VM as DONE (its real snapshot
// is published) or have purged it (vmglue's last snapshot, deleted).
func TestDeletedWhileOff(t *testing.T) {
	tests := []struct {
		name   string
		remove func(e *env)
		ended  bool // the published snapshot has oned's ETIME
	}{
		{"DONE in oned", func(e *env) {
			doc := corpus(t, "vm-poweroff-1nic-snapshot.xml")
			done := strings.Replace(strings.Replace(doc, "<STATE>8</STATE>", "<STATE>6</STATE>", 1), "<ETIME>0</ETIME>", "<ETIME>1518870000</ETIME>", 1)
			if err := e.one.SetVM(done); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"purged from oned", func(e *env) { e.one.RemoveVM(621) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.loadLive()
			if _, err := e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{}); err != nil {
				t.Fatal(err)
			}
			tt.remove(e)
			r, err := e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{})
			if err != nil {
				t.Fatal(err)
			}
			if r.Deleted != 0 || r.Missing != 1 || e.snapshot("621").Deleted() {
				t.Fatalf("first sweep without 621: %+v; want it missing, not deleted", r)
			}
			if got := e.absences(); !slices.Equal(got, []string{"one.621"}) {
				t.Fatalf("absences %v", got)
			}
			r, err = e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{})
			if err != nil {
				t.Fatal(err)
			}
			snap := e.snapshot("621")
			if r.Deleted != 1 || r.Published() != 1 || !snap.Deleted() {
				t.Fatalf("second sweep: %+v, snapshot %+v; want 621 deleted", r, snap)
			}
			if (snap.Times.Ended != nil) != tt.ended {
				t.Errorf("snapshot ended %v, want oned's ETIME: %v", snap.Times.Ended, tt.ended)
			}
			last := e.events()[len(e.events())-1]
			if last.Type != "vm.deleted" || last.Origin != eventbus.OriginSweep || len(last.Data.NICs) == 0 {
				t.Errorf("last event %s origin %q nics %d, want a sweep's vm.deleted with the NICs (DNS removes their records)", last.Type, last.Origin, len(last.Data.NICs))
			}
			if got := e.absences(); len(got) != 0 {
				t.Fatalf("absences after the delete %v", got)
			}
			if r, err = e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{}); err != nil || r.Published() != 0 {
				t.Fatalf("third sweep: %+v %v, want nothing", r, err)
			}
		})
	}
}

// TestBrokenAnswers: an empty pool once deletes nothing; an empty pool
// every time is held back by max_delete_share; an API error changes nothing
// (the count of a missing VM does not advance); a VM a page boundary hid is
// found by one.vm.info and not deleted.
func TestBrokenAnswers(t *testing.T) {
	e := newEnv(t)
	e.loadLive()
	if _, err := e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{}); err != nil {
		t.Fatal(err)
	}
	stored := len(e.events())
	var mode atomic.Value
	mode.Store("")
	e.one.Inject(func(c apitest.Call) *apitest.Reply {
		if c.Method != "one.vmpool.infoextended" {
			return nil
		}
		switch mode.Load() {
		case "empty":
			return &apitest.Reply{Body: "<VM_POOL></VM_POOL>"}
		case "auth":
			return &apitest.Reply{ErrorCode: api.CodeAuthentication, Message: "[one.vmpool.infoextended] User couldn't be authenticated, aborting call."}
		case "fault":
			return &apitest.Reply{FaultCode: -501, Message: "Type mismatch"}
		case "down":
			return &apitest.Reply{HTTPCode: 503}
		}
		return nil
	})
	sweepAs := func(m string) (sweep.Result, error) {
		mode.Store(m)
		return e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{})
	}

	r, err := sweepAs("empty")
	if err != nil || r.Missing != len(liveIDs) || r.Deleted != 0 {
		t.Fatalf("empty pool once: %+v %v; want all missing, none deleted", r, err)
	}
	if r, err = sweepAs(""); err != nil || r.Published() != 0 || len(e.absences()) != 0 {
		t.Fatalf("normal sweep after it: %+v %v, absences %v; want nothing, counts cleared", r, err, e.absences())
	}

	for range 3 {
		if r, err = sweepAs("empty"); err != nil || r.Deleted != 0 {
			t.Fatalf("empty pool again: %+v %v", r, err)
		}
	}
	if r.HeldBack != len(liveIDs) {
		t.Fatalf("empty pool three times: %+v; want every deletion held back", r)
	}
	// Forced: one.vm.info still finds every VM alive, so nothing goes.
	mode.Store("empty")
	r, err = e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{Force: true})
	if err != nil || r.Deleted != 0 || len(e.absences()) != 0 {
		t.Fatalf("forced sweep of an empty pool whose VMs oned still has: %+v %v, absences %v", r, err, e.absences())
	}

	// 621 is gone; one sweep counts it, then the API fails three ways.
	e.one.RemoveVM(621)
	if r, err = sweepAs(""); err != nil || r.Missing != 1 {
		t.Fatalf("621 missing once: %+v %v", r, err)
	}
	for _, m := range []string{"auth", "fault", "down"} {
		r, err = sweepAs(m)
		if err == nil || r.Deleted != 0 || r.Missing != 0 {
			t.Fatalf("API %s: %+v %v; want an error and nothing concluded", m, r, err)
		}
		if m == "auth" && !errors.Is(err, api.ErrAuthentication) {
			t.Fatalf("API auth: %v", err)
		}
	}
	if r, err = sweepAs(""); err != nil || r.Deleted != 1 {
		t.Fatalf("the second successful sweep without 621: %+v %v; want it deleted", r, err)
	}
	if got := len(e.events()); got != stored+1 {
		t.Fatalf("%d events stored, want %d (the one delete)", got, stored+1)
	}
}

// TestForce: deletions beyond max_delete_share wait for --force, and the
// metrics say so (without max_delete_floor, which TestSmallCloudDeletes
// tests).
func TestForce(t *testing.T) {
	e := newEnv(t)
	e.loadLive()
	shareOnly := sweep.Options{MaxDeleteFloor: -1}
	reg := prometheus.NewRegistry()
	m, err := sweep.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.run(e.sweeper(shareOnly, m), sweep.Mode{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{0, 1, 2} { // half of the 6 known VMs
		e.one.RemoveVM(id)
	}
	for i := range 3 {
		r, err := e.run(e.sweeper(shareOnly, m), sweep.Mode{})
		if err != nil || r.Deleted != 0 || (i > 0 && r.HeldBack != 3) {
			t.Fatalf("sweep %d: %+v %v; want nothing deleted, 3 held back from the second on", i+1, r, err)
		}
	}
	want := `vmglue_sweep_deletions_held_back_total{cloud="one"} 6
vmglue_sweep_events_published_total{cloud="one",reason="changed"} 0
vmglue_sweep_events_published_total{cloud="one",reason="deleted"} 0
vmglue_sweep_events_published_total{cloud="one",reason="new"} 6
vmglue_sweep_vms_known{cloud="one"} 6
vmglue_sweep_vms_missing{cloud="one"} 3
vmglue_sweep_vms_seen{cloud="one"} 3
`
	if got := metrics(t, reg); got != want {
		t.Fatalf("metrics:\n%s\nwant:\n%s", got, want)
	}
	r, err := e.run(e.sweeper(sweep.Options{MaxDeleteShare: 0.5, MaxDeleteFloor: -1}, nil), sweep.Mode{})
	if err != nil || r.Deleted != 3 {
		t.Fatalf("max_delete_share 0.5: %+v %v; want the 3 deleted", r, err)
	}
	e.one.RemoveVM(595)
	e.one.RemoveVM(621)
	for range 2 {
		if r, err = e.run(e.sweeper(shareOnly, nil), sweep.Mode{}); err != nil || r.Deleted != 0 {
			t.Fatalf("2 of 3: %+v %v; want them held back", r, err)
		}
	}
	if r, err = e.run(e.sweeper(shareOnly, nil), sweep.Mode{Force: true}); err != nil || r.Deleted != 2 || r.HeldBack != 0 {
		t.Fatalf("forced: %+v %v; want 2 deleted", r, err)
	}
}

// TestHiddenByPaging: a VM a listing missed (VMs deleted between two pages
// shift the offsets) but one.vm.info finds alive is not deleted.
func TestHiddenByPaging(t *testing.T) {
	e := newEnv(t)
	e.loadLive()
	if _, err := e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{}); err != nil {
		t.Fatal(err)
	}
	var hide atomic.Bool
	e.one.Inject(func(c apitest.Call) *apitest.Reply {
		if c.Method != "one.vmpool.infoextended" || !hide.Load() || c.Params[1] != 4 {
			return nil
		}
		return &apitest.Reply{Body: "<VM_POOL>" + corpusVM(t, "vm-active-backup-1nic-6.10-docs.xml") + "</VM_POOL>"} // 621 left out
	})
	hide.Store(true)
	for i := range 3 {
		r, err := e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{})
		if err != nil || r.Deleted != 0 || r.Published() != 0 {
			t.Fatalf("sweep %d: %+v %v; want nothing deleted", i+1, r, err)
		}
	}
	if e.snapshot("621").Deleted() {
		t.Fatal("621 deleted")
	}
}

// corpusVM is a corpus VM document without its XML declaration.
func corpusVM(t *testing.T, name string) string {
	doc := corpus(t, name)
	if i := strings.Index(doc, "?>"); i >= 0 && strings.HasPrefix(doc, "<?xml") {
		doc = doc[i+2:]
	}
	return doc
}

// TestDryRun changes nothing: no event, no count.
func TestDryRun(t *testing.T) {
	e := newEnv(t)
	e.loadLive()
	r, err := e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{DryRun: true})
	if err != nil || r.New != len(liveIDs) || len(e.events()) != 0 {
		t.Fatalf("dry run: %+v %v, %d events", r, err, len(e.events()))
	}
	if _, err := e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{}); err != nil {
		t.Fatal(err)
	}
	e.one.RemoveVM(621)
	for range 3 {
		r, err = e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{DryRun: true})
		if err != nil || r.Missing != 1 || len(e.absences()) != 0 {
			t.Fatalf("dry run with 621 gone: %+v %v, absences %v", r, err, e.absences())
		}
	}
	r, err = e.run(e.sweeper(sweep.Options{MissingSweeps: 1}, nil), sweep.Mode{DryRun: true})
	if err != nil || r.Deleted != 1 || e.snapshot("621").Deleted() {
		t.Fatalf("dry run, missing_sweeps 1: %+v %v; want the delete planned, not done", r, err)
	}
}

// TestThroughDelivery: with the shared delivery of the resident sources (a
// listener's sweep), what NATS cannot take is spooled, not lost.
func TestThroughDelivery(t *testing.T) {
	e := newEnv(t)
	e.loadLive()
	dir := t.TempDir()
	p, err := delivery.Open(delivery.Options{Conn: eventbus.ConnOptions{URL: "nats://" + natstest.FreeAddr(t)}, SpoolDir: dir, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	s, err := sweep.New(ctx, sweep.NewOpenNebula(cloud, e.client), e.js, p, sweep.Options{}, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Run(ctx, sweep.Mode{})
	if err != nil || r.New != len(liveIDs) || r.Spooled != len(liveIDs) {
		t.Fatalf("sweep with NATS unreachable for the delivery: %+v %v; want every event spooled", r, err)
	}
	es, err := spool.New(dir).List()
	if err != nil || len(es) != len(liveIDs) {
		t.Fatalf("spool holds %d events (%v), want %d", len(es), err, len(liveIDs))
	}
}

// metrics prints the sweep's counters and gauges (not the durations and
// timestamps), one "name{labels} value" line each, sorted.
func metrics(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		name := mf.GetName()
		if strings.HasSuffix(name, "_seconds") || name == "vmglue_sweep_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			lines = append(lines, fmt.Sprintf("%s{%s} %g", name, strings.Join(labels, ","), v))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}

// TestAbsenceOfDeletedVMCleared: a VM the sweep counted missing and that a
// hook then reported deleted leaves no count behind, and no second delete.
func TestAbsenceOfDeletedVMCleared(t *testing.T) {
	e := newEnv(t)
	e.loadLive()
	if _, err := e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{}); err != nil {
		t.Fatal(err)
	}
	e.one.RemoveVM(621)
	if r, err := e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{}); err != nil || r.Missing != 1 {
		t.Fatalf("%+v %v", r, err)
	}
	vm, err := opennebula.ParseVM([]byte(strings.Replace(corpus(t, "vm-poweroff-1nic-snapshot.xml"), "<STATE>8</STATE>", "<STATE>6</STATE>", 1)), cloud)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.snapshots(context.Background()).Merge(context.Background(), &vm); err != nil { // the hook's DONE
		t.Fatal(err)
	}
	r, err := e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{})
	if err != nil || r.Published() != 0 || r.Missing != 0 || len(e.absences()) != 0 || r.Known != len(liveIDs)-1 {
		t.Fatalf("after the hook's delete: %+v %v, absences %v", r, err, e.absences())
	}
}

// TestSecretsAsTheHook: the sweep keeps a VM's secrets off the bus as the
// hook does, with the hook's challenge key: the challenge as the same MAC,
// other secrets redacted, and so the same event as the hook's.
func TestSecretsAsTheHook(t *testing.T) {
	e := newEnv(t)
	keyFile := filepath.Join(t.TempDir(), "challenge.key")
	if err := os.WriteFile(keyFile, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := testenv.OneVMXML(testenv.OneVM{ID: 77, Name: "pup", IP: "10.0.7.7", State: 3, LCM: 3, Time: 1700000000,
		UserAttr: map[string]string{"PUPPET_CHALLENGE": "let-me-in", "ROOT_PASSWORD": "hunter2", "LB_BACKENDS": "web:80"}})
	if err := e.one.SetVM(string(doc)); err != nil {
		t.Fatal(err)
	}
	key, err := eventbus.ReadChallengeKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	hookEv, err := opennebula.ParseHookInput(testenv.HookStdin(doc, "running"), nil, cloud, func(vm *eventbus.VM) {
		eventbus.Secrets{ChallengeKey: func() ([]byte, error) { return key, nil }}.Protect(vm)
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &sweep.Config{ChallengeKeyFile: keyFile, OpenNebula: []sweep.OpenNebulaCloud{{Cloud: cloud, Endpoint: e.one.URL, AuthFile: e.authFile}}}
	cfg.SetDefaults()
	ctx := context.Background()
	sweepers, closeAll, err := sweep.Build(ctx, cfg, "", e.js, sweep.JetStreamPublisher{JS: e.js}, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	if r, err := e.run(sweepers[0], sweep.Mode{}); err != nil || r.New != 1 {
		t.Fatalf("%+v %v", r, err)
	}
	got := e.events()[0]
	a := got.Data.Attributes
	if got.ID != hookEv.ID || !strings.HasPrefix(a["PUPPET_CHALLENGE"], eventbus.ChallengePrefix) || a["ROOT_PASSWORD"] != eventbus.RedactedValue || a["LB_BACKENDS"] != "web:80" {
		t.Fatalf("sweep event %s attributes %v; want the hook's %s (%v)", got.ID, a, hookEv.ID, hookEv.Data.Attributes)
	}
}
