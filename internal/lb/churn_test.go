package lb

import (
	"fmt"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// churn creates and deletes n VMs on a real HAProxy, live at most at a
// time, each through Apply as the runtime calls it, with a Resync (as
// the runtime runs them) every resyncEvery VMs. It returns the most
// per-VM states the target held.
func churn(t *testing.T, tgt *Target, n, live, resyncEvery int) (peak int) {
	t.Helper()
	type vmHave struct {
		vm   *eventbus.VM
		have worker.Objects
	}
	var up []vmHave
	for i := range n {
		vm := testVM(fmt.Sprint(100000+i), "web:8080")
		have, err := applyOnce(t, tgt, vm, nil)
		if err != nil {
			t.Fatalf("add vm %s: %v", vm.ID, err)
		}
		up = append(up, vmHave{vm, have})
		if len(up) > live {
			d := up[0]
			up = up[1:]
			d.vm.Kind = eventbus.KindDeleted
			if got, err := converge(t, tgt, d.vm, d.have); err != nil || len(got) != 0 {
				t.Fatalf("delete vm %s: %v, %v", d.vm.ID, got, err)
			}
		}
		if (i+1)%resyncEvery == 0 {
			if err := tgt.Resync(t.Context(), nil); err != nil {
				t.Fatalf("resync: %v", err)
			}
		}
		tgt.mu.Lock()
		peak = max(peak, len(tgt.vms))
		tgt.mu.Unlock()
	}
	return peak
}

// TestStateBoundedUnderChurn: 1,000 VMs created and deleted, at most 5
// alive, Resync every 50: the target's per-VM state stays bounded by the
// live VMs plus those deleted since the Resync before (the old code kept
// one per VM ever seen).
func TestStateBoundedUnderChurn(t *testing.T) {
	h := testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{{Name: "web"}}})
	tgt, err := New(testConfig("lb1", h.Admin()), worker.Deps{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	const n, live, every = 1000, 5, 50
	peak := churn(t, tgt, n, live, every)
	t.Logf("%d VMs created and deleted: at most %d per-VM states", n, peak)
	if bound := live + 2*every + 1; peak > bound {
		t.Fatalf("per-VM states peaked at %d, want at most %d", peak, bound)
	}
}
