package worker_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

// Compact shrinks a settled deleted VM to its tombstone and removes its
// empty records; the tombstone still keeps a replayed old event from
// bringing the VM back. Live VMs and deletes not applied everywhere are
// left whole. Real NATS, the runtime converging.
func TestCompact(t *testing.T) {
	h, m := start(t, nil)
	ctx := context.Background()
	gone, live, stuck := testVM("cg"), testVM("cl"), testVM("cs")
	goneRunning := h.Publish(gone)
	h.Publish(live)
	h.Publish(stuck)
	h.Publish(workertest.Deleted(gone))
	h.Publish(workertest.Deleted(stuck))
	h.WaitIdle()
	// stuck: another worker still records an object of it (its delete
	// failed there).
	applied, err := h.JS.KeyValue(ctx, eventbus.BucketApplied)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(worker.Record{Applied: worker.Objects{"A webcs": "10.0.0.1"}})
	if _, err := applied.Put(ctx, "dns.one.cs", b); err != nil {
		t.Fatal(err)
	}
	full, _, err := h.Snapshots.Get(ctx, gone.Key())
	if err != nil || full == nil || len(full.Attributes) == 0 {
		t.Fatalf("snapshot before compaction: %+v %v", full, err)
	}

	if st, err := worker.Compact(ctx, h.JS, time.Now().Add(-time.Hour), workertest.Logger()); err != nil || st != (worker.CompactStats{}) {
		t.Fatalf("nothing deleted an hour ago: %+v %v", st, err)
	}
	st, err := worker.Compact(ctx, h.JS, time.Now(), workertest.Logger())
	if err != nil || st.Tombstones != 1 || st.Records != 1 || st.Kept != 1 {
		t.Fatalf("compact: %+v %v, want 1 tombstone, 1 record, 1 kept", st, err)
	}
	tomb, _, err := h.Snapshots.Get(ctx, gone.Key())
	if err != nil || tomb == nil || !tomb.Deleted() || tomb.Version != full.Version || tomb.Name != full.Name ||
		len(tomb.Attributes) != 0 || len(tomb.NICs) != 0 {
		t.Fatalf("tombstone %+v %v, want the deleted VM's identity and version only", tomb, err)
	}
	if rec := h.Record(&gone); rec != nil {
		t.Fatalf("record of %s after compaction: %+v", gone.Key(), rec)
	}
	for _, vm := range []eventbus.VM{live, stuck} {
		if snap, _, err := h.Snapshots.Get(ctx, vm.Key()); err != nil || snap == nil || len(snap.Attributes) == 0 {
			t.Fatalf("snapshot of %s changed: %+v %v", vm.Key(), snap, err)
		}
	}
	if rec := h.Record(&live); rec == nil || len(rec.Applied) != 2 {
		t.Fatalf("record of the live VM: %+v", rec)
	}
	if st, err := worker.Compact(ctx, h.JS, time.Now(), workertest.Logger()); err != nil || st.Tombstones+st.Records != 0 {
		t.Fatalf("second compact: %+v %v, want nothing to do", st, err)
	}

	// The old RUNNING event again (replay, onehook retry): nothing comes back.
	h.Replay(goneRunning)
	h.WaitIdle()
	if got := m.observe(&gone); len(got) != 0 {
		t.Fatalf("a replayed event revived the compacted VM: %v", got)
	}
	if snap, _, _ := h.Snapshots.Get(ctx, gone.Key()); snap == nil || !snap.Deleted() {
		t.Fatalf("snapshot after the replay: %+v", snap)
	}

	// Past tombstone_ttl the tombstone goes; the live VM and the delete not
	// applied everywhere stay.
	if n, err := worker.ForgetTombstones(ctx, h.JS, time.Now().Add(-time.Hour), workertest.Logger()); err != nil || n != 0 {
		t.Fatalf("forget tombstones of an hour ago: %d, %v; want none", n, err)
	}
	if n, err := worker.ForgetTombstones(ctx, h.JS, time.Now().Add(time.Second), workertest.Logger()); err != nil || n != 1 {
		t.Fatalf("forget tombstones: %d, %v; want 1", n, err)
	}
	if snap, _, err := h.Snapshots.Get(ctx, gone.Key()); err != nil || snap != nil {
		t.Fatalf("tombstone after ForgetTombstones: %+v %v", snap, err)
	}
	for _, vm := range []eventbus.VM{live, stuck} {
		if snap, _, err := h.Snapshots.Get(ctx, vm.Key()); err != nil || snap == nil {
			t.Fatalf("snapshot of %s forgotten: %v", vm.Key(), err)
		}
	}
}

// The puppet worker's certname buckets keep a delete marker for every
// certname they forgot; Compact removes those created before its cutoff,
// and leaves the values alone.
func TestCompactCertnameMarkers(t *testing.T) {
	h, _ := start(t, nil)
	ctx := context.Background()
	msgs := func(bucket string) uint64 {
		t.Helper()
		st, err := h.JS.Stream(ctx, "KV_"+bucket)
		if err != nil {
			t.Fatal(err)
		}
		in, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return in.State.Msgs
	}
	for _, b := range []string{eventbus.BucketCertnames, eventbus.BucketCertBindings} {
		kv, err := h.JS.KeyValue(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"gone.cloud.test", "back.cloud.test", "live.cloud.test"} {
			if _, err := kv.Put(ctx, k, []byte(`["one.1"]`)); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range []string{"gone.cloud.test", "back.cloud.test"} {
			if err := kv.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	if st, err := worker.Compact(ctx, h.JS, time.Now().Add(-time.Hour), workertest.Logger()); err != nil || st.Markers != 0 || msgs(eventbus.BucketCertnames) != 3 {
		t.Fatalf("markers younger than the cutoff: %+v %v, want none removed", st, err)
	}
	for _, b := range []string{eventbus.BucketCertnames, eventbus.BucketCertBindings} {
		kv, _ := h.JS.KeyValue(ctx, b)
		if _, err := kv.Put(ctx, "back.cloud.test", []byte(`["one.2"]`)); err != nil { // a new VM of that name
			t.Fatal(err)
		}
		if n := msgs(b); n != 3 {
			t.Fatalf("%s holds %d messages before compaction, want 3 (a marker, the new value, the live one)", b, n)
		}
	}
	st, err := worker.Compact(ctx, h.JS, time.Now(), workertest.Logger())
	if err != nil || st.Markers != 2 {
		t.Fatalf("compact: %+v %v, want 2 markers removed (one per bucket)", st, err)
	}
	for _, b := range []string{eventbus.BucketCertnames, eventbus.BucketCertBindings} {
		kv, _ := h.JS.KeyValue(ctx, b)
		if n := msgs(b); n != 2 {
			t.Fatalf("%s holds %d messages after compaction, want 2", b, n)
		}
		if e, err := kv.Get(ctx, "back.cloud.test"); err != nil || string(e.Value()) != `["one.2"]` {
			t.Fatalf("%s: the key written again after its marker: %v %v", b, e, err)
		}
		if e, err := kv.Get(ctx, "live.cloud.test"); err != nil || string(e.Value()) != `["one.1"]` {
			t.Fatalf("%s: a live key: %v %v", b, e, err)
		}
	}
}
