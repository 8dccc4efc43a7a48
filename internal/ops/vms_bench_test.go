package ops_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/ops"
	"github.com/vmglue/vmglue/internal/ops/opstest"
	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

// A fresh bus knows no VM: ListVMs returns none, and does not wait for a
// value that never comes.
func TestListVMsEmpty(t *testing.T) {
	h := workertest.NewHarness(t, "dns")
	vms, err := ops.ListVMs(ctx(t), h.JS, ops.VMListRequest{Workers: []string{"dns"}})
	if err != nil || len(vms) != 0 {
		t.Fatalf("ListVMs: %v %v, want none", vms, err)
	}
}

// BenchmarkListVMs lists 2000 VMs with a snapshot and two worker records
// each, what the VMs page of a mid-sized cloud reads per view.
func BenchmarkListVMs(b *testing.B) {
	const n = 2000
	h := workertest.NewHarness(b, "dns")
	c := ctx(b)
	snaps, err := h.JS.KeyValue(c, eventbus.BucketVMs)
	if err != nil {
		b.Fatal(err)
	}
	applied, err := h.JS.KeyValue(c, eventbus.BucketApplied)
	if err != nil {
		b.Fatal(err)
	}
	rec, _ := json.Marshal(worker.Record{Applied: worker.Objects{"A x": "10.0.0.1"}, Updated: time.Now()})
	for i := range n {
		id := fmt.Sprint(i)
		v, _ := json.Marshal(opstest.VM(id, eventbus.KindRunning))
		if _, err := snaps.Put(c, "one."+id, v); err != nil {
			b.Fatal(err)
		}
		for _, w := range []string{"dns", "lb"} {
			if _, err := applied.Put(c, w+".one."+id, rec); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for b.Loop() {
		vms, err := ops.ListVMs(c, h.JS, ops.VMListRequest{Workers: []string{"dns", "lb"}})
		if err != nil || len(vms) != n {
			b.Fatalf("ListVMs: %d VMs, %v", len(vms), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/list")
}
