package lb

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

// Two vmglue processes run the lb worker. This one's Resync works from a
// copy of the registry; with the runtime's guard (worker.Runner.Guard) each
// repair waits for the VM's lease and checks the registry again, so it
// never re-adds a server the other process is converging or has removed.
// Real runtime, NATS and HAProxy.
func TestResyncGuardAcrossInstances(t *testing.T) {
	be := testenv.StartHTTPBackend(t, "vm30")
	h := testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{{Name: "web"}}})
	tgt, _ := newTarget(t, testConfig("lb1", h.Admin()))
	bus := workertest.NewHarness(t, tgt.Name())
	r, err := worker.New(bus.JS, tgt, workertest.TestOptions(), workertest.Logger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tgt.SetGuard(r.Guard)
	ctx := context.Background()
	bucket := func(name string) jetstream.KeyValue {
		b, err := bus.JS.KeyValue(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	applied, locks := bucket(eventbus.BucketApplied), bucket(eventbus.BucketLocks)
	record := func(objs worker.Objects) { // what the runtime records
		b, _ := json.Marshal(worker.Record{Applied: objs})
		if _, err := applied.Put(ctx, "lb.one.30", b); err != nil {
			t.Fatal(err)
		}
	}
	present := func() bool { _, ok := servers(t, h)["web/one-30"]; return ok }

	vm := testVM("30", "web:"+port(be))
	have := mustConverge(t, tgt, vm, nil)
	record(have)
	stale := map[string]worker.Objects{vm.Key(): have}
	h.Reload()
	if present() {
		t.Fatal("dynamic server survived the reload")
	}

	// The other process holds the VM's lease: it converges the VM; no repair.
	if _, err := locks.Create(ctx, "lb.one.30", []byte("other-process")); err != nil {
		t.Fatal(err)
	}
	if err := tgt.Resync(ctx, stale); err != nil {
		t.Fatalf("resync with the lease held elsewhere: %v", err)
	}
	if present() {
		t.Fatal("repaired while another process holds the VM's lease")
	}

	// Lease free, registry unchanged: repaired.
	if err := locks.Delete(ctx, "lb.one.30"); err != nil {
		t.Fatal(err)
	}
	if err := tgt.Resync(ctx, stale); err != nil {
		t.Fatalf("resync: %v", err)
	}
	if !present() {
		t.Fatal("not repaired with the lease free and the server still recorded")
	}
	awaitBody(t, h.Frontend["web"], "vm30")

	// The other process removed the server and recorded that; this Resync
	// still has the old copy.
	h.Reload()
	record(worker.Objects{})
	if err := tgt.Resync(ctx, stale); err != nil {
		t.Fatalf("resync from a stale copy: %v", err)
	}
	if present() {
		t.Fatal("a stale copy of the registry brought back a removed server")
	}
	// The release is sent without waiting for its answer: await it.
	testenv.WaitFor(t, 5*time.Second, "the guard's lease released", func() bool {
		_, err := locks.Get(ctx, "lb.one.30")
		return eventbus.IsNoKey(err)
	})
}
