package eventbus_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natsserver"
	"github.com/vmglue/vmglue/eventbus/natstest"
)

func sampleVM(kind string) eventbus.VM {
	return eventbus.VM{Cloud: "one", CloudType: "opennebula", ID: "42", Name: "web1", State: "ACTIVE", LCMState: "RUNNING",
		Kind: kind, NICs: []eventbus.NIC{{ID: "0", IP: "10.0.0.42"}}, Version: eventbus.Version{Seq: 1, Changed: 1e18}}
}

func TestPublishDeduplicates(t *testing.T) {
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.URL)
	ctx := context.Background()
	ev, err := eventbus.NewEvent(sampleVM(eventbus.KindRunning))
	if err != nil {
		t.Fatal(err)
	}
	r1, err := eventbus.Publish(ctx, js, &ev)
	if err != nil || r1.Duplicate {
		t.Fatalf("first publish: %+v %v", r1, err)
	}
	r2, err := eventbus.Publish(ctx, js, &ev)
	if err != nil || !r2.Duplicate {
		t.Fatalf("second publish: %+v %v, want duplicate", r2, err)
	}
	got := natstest.Events(t, js)
	if len(got) != 1 || got[0].ID != ev.ID || got[0].Data.Name != "web1" {
		t.Fatalf("stored %+v", got)
	}
	if want := "vmglue.vm.one.42.running"; ev.NATSSubject() != want {
		t.Fatalf("subject %s, want %s", ev.NATSSubject(), want)
	}
}

func TestProvisionIdempotent(t *testing.T) {
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 0; i < 2; i++ {
		if err := eventbus.Provision(ctx, js, eventbus.ProvisionOptions{}); err != nil {
			t.Fatalf("provision %d: %v", i, err)
		}
	}
	st, err := js.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if d := st.CachedInfo().Config.Duplicates; d != eventbus.DefaultDuplicateWindow {
		t.Fatalf("duplicate window %s", d)
	}
}

// A deployment from before History 1 (buckets with 5 revisions per key)
// is updated in place: the newest revision of every key stays.
func TestProvisionPrunesHistory(t *testing.T) {
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, bucket := range []string{eventbus.BucketVMs, eventbus.BucketApplied} {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, History: 5, Storage: jetstream.FileStorage})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if _, err := kv.Put(ctx, "one.1", []byte{byte('a' + i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := eventbus.Provision(ctx, js, eventbus.ProvisionOptions{}); err != nil {
		t.Fatalf("provision over history 5: %v", err)
	}
	for _, bucket := range []string{eventbus.BucketVMs, eventbus.BucketApplied} {
		kv, err := js.KeyValue(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		e, err := kv.Get(ctx, "one.1")
		if err != nil || st.History() != 1 || st.Values() != 1 || string(e.Value()) != "e" {
			t.Fatalf("%s: history %d, %d values, newest %v %v; want 1, 1, \"e\"", bucket, st.History(), st.Values(), e, err)
		}
	}
}

func TestEmbeddedListenErrors(t *testing.T) {
	s := natstest.Start(t)
	tests := []struct {
		name, listen, token, want string
		inUse                     bool
	}{
		{"port taken", strings.TrimPrefix(s.URL, "nats://"), "", "already in use", true},
		// An address of no local interface is not a taken port: the
		// real cause is shown, without the "another serve?" hint.
		{"address not local", "192.0.2.1:4222", "tok3n-tok3n", "cannot assign requested address", false},
		// Anyone who can publish can delete DNS records and certificates.
		{"all interfaces without auth", "0.0.0.0:0", "", "no client authentication", false},
		{"any address without auth", ":0", "", "no client authentication", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := natsserver.Start(natsserver.Options{Listen: tt.listen, StoreDir: t.TempDir(), Token: tt.token})
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line saying %q", err, tt.want)
			}
			if got := errors.Is(err, natsserver.ErrAddrInUse); got != tt.inUse {
				t.Fatalf("errors.Is(err, ErrAddrInUse) = %v, want %v (err: %v)", got, tt.inUse, err)
			}
		})
	}
}

// With a token the embedded server refuses clients without it.
func TestEmbeddedAuth(t *testing.T) {
	const token = "s3cret-t0ken"
	ns, err := natsserver.Start(natsserver.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if nc, err := eventbus.Connect(eventbus.ConnOptions{URL: ns.ClientURL(), Name: "test", Timeout: 2 * time.Second}, false); err == nil {
		nc.Close()
		t.Fatal("connected without the token")
	}
	nc, err := eventbus.Connect(eventbus.ConnOptions{URL: ns.ClientURL(), Token: token, Name: "test", Timeout: 2 * time.Second}, false)
	if err != nil {
		t.Fatalf("connect with the token: %v", err)
	}
	nc.Close()
}

func TestEventIDDeterministic(t *testing.T) {
	a, _ := eventbus.NewEvent(sampleVM(eventbus.KindRunning))
	b, _ := eventbus.NewEvent(sampleVM(eventbus.KindRunning))
	vm := sampleVM(eventbus.KindRunning)
	vm.NICs[0].IP = "10.0.0.43"
	c, _ := eventbus.NewEvent(vm)
	if a.ID != b.ID || a.ID == c.ID {
		t.Fatalf("ids %s %s %s", a.ID, b.ID, c.ID)
	}
}

// TestCompareSnapshots: the order of two snapshots does not depend on which
// is asked first, deleted wins, and only the same content is equal.
func TestCompareSnapshots(t *testing.T) {
	x, y := sampleVM(eventbus.KindRunning), sampleVM(eventbus.KindRunning)
	y.NICs = []eventbus.NIC{{ID: "0", IP: "10.0.0.9"}}
	if c := eventbus.Compare(&x, &y); c == 0 || eventbus.Compare(&y, &x) != -c {
		t.Fatalf("equal versions, other content: Compare %d and %d, want opposite and not 0", c, eventbus.Compare(&y, &x))
	}
	seenLater := x
	seenLater.Version.Seen = 99
	if eventbus.Compare(&seenLater, &x) != 1 || seenLater.Digest() != x.Digest() {
		t.Fatal("a later Seen must be newer with the same digest")
	}
	ev1, _ := eventbus.NewEvent(x)
	ev2, _ := eventbus.NewEvent(seenLater)
	if ev1.ID != ev2.ID {
		t.Fatalf("ids %s and %s: Seen must not change the id", ev1.ID, ev2.ID)
	}
	if !strings.HasSuffix(ev2.ID, "-"+seenLater.Digest()) {
		t.Fatalf("id %s does not end with the digest %s", ev2.ID, seenLater.Digest())
	}
	del := sampleVM(eventbus.KindDeleted)
	del.Version.Seq = 0
	if eventbus.Compare(&del, &seenLater) != 1 || eventbus.Compare(&x, &x) != 0 {
		t.Fatal("deleted must win, a snapshot must equal itself")
	}
}

func TestVersionCompare(t *testing.T) {
	tests := []struct {
		name string
		a, b eventbus.Version
		want int
	}{
		{"higher seq", eventbus.Version{Seq: 2}, eventbus.Version{Seq: 1, Changed: 9}, 1},
		{"later change", eventbus.Version{Seq: 1, Changed: 5}, eventbus.Version{Seq: 1, Changed: 4, Observed: 9}, 1},
		{"later observation", eventbus.Version{Seq: 1, Changed: 5, Observed: 2}, eventbus.Version{Seq: 1, Changed: 5, Observed: 3}, -1},
		{"later seen", eventbus.Version{Seq: 1, Changed: 5, Observed: 3, Seen: 7}, eventbus.Version{Seq: 1, Changed: 5, Observed: 3, Seen: 6}, 1},
		{"seen after the cloud's times", eventbus.Version{Seq: 1, Observed: 3}, eventbus.Version{Seq: 1, Observed: 2, Seen: 9}, 1},
		{"equal", eventbus.Version{Seq: 1}, eventbus.Version{Seq: 1}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Compare(tt.b); got != tt.want {
				t.Fatalf("Compare = %d, want %d", got, tt.want)
			}
			if got := tt.b.Compare(tt.a); got != -tt.want {
				t.Fatalf("reverse Compare = %d, want %d", got, -tt.want)
			}
		})
	}
}
