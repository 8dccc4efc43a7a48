package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

// TestTombstonesBoundedUnderChurn: 2,000 VMs created and deleted on a real
// NATS, with serve's sweep (Compact, then ForgetTombstones past the ttl)
// every 200: VMGLUE_VMS holds no more than the VMs deleted since the last
// sweep, instead of one tombstone per VM ever deleted.
func TestTombstonesBoundedUnderChurn(t *testing.T) {
	ctx := context.Background()
	h := workertest.NewHarness(t, "churn")
	js, snaps := h.JS, h.Snapshots
	kv, err := js.KeyValue(ctx, eventbus.BucketVMs)
	if err != nil {
		t.Fatal(err)
	}
	const n, every = 2000, 200
	var peak uint64
	for i := range n {
		vm := testVM(fmt.Sprint(i))
		if _, err := snaps.Merge(ctx, &vm); err != nil {
			t.Fatal(err)
		}
		d := workertest.Deleted(vm)
		if _, err := snaps.Merge(ctx, &d); err != nil {
			t.Fatal(err)
		}
		if (i+1)%every != 0 {
			continue
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		peak = max(peak, st.Values())
		if _, err := worker.Compact(ctx, js, time.Now().Add(time.Second), workertest.Logger()); err != nil {
			t.Fatal(err)
		}
		if _, err := worker.ForgetTombstones(ctx, js, time.Now().Add(time.Second), workertest.Logger()); err != nil {
			t.Fatal(err)
		}
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d VMs created and deleted: VMGLUE_VMS peaked at %d keys, %d after the last sweep (%d bytes)", n, peak, st.Values(), st.Bytes())
	if peak > every || st.Values() != 0 {
		t.Fatalf("VMGLUE_VMS peaked at %d keys and ends with %d, want at most %d and 0", peak, st.Values(), every)
	}
}
