package churn

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/lb"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

var (
	vms   = flag.Int("vms", 10000, "VMs created and deleted")
	live  = flag.Int("live", 10, "VMs alive at once")
	every = flag.Int("sweep", 500, "VMs between two sweeps (resync, compact, forget tombstones)")
)

// BenchmarkChurn creates and deletes -vms VMs (at most -live at once) on
// an embedded NATS and a real HAProxy and prints, after every sweep, the
// heap in use (after a GC) and the size of VMGLUE_VMS.
func BenchmarkChurn(b *testing.B) {
	for range b.N {
		ctx := context.Background()
		bus := workertest.NewHarness(b, "churn")
		js, snaps := bus.JS, bus.Snapshots
		h := testenv.StartHAProxy(b, testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{{Name: "web"}}})
		tgt, err := lb.New(lb.Config{Instances: []lb.Instance{{Name: "lb1", Address: h.Admin()}},
			Allow: []lb.Allow{{Backends: []string{"web"}, Ports: []string{"8080"}}}}, worker.Deps{Log: zerolog.Nop()})
		if err != nil {
			b.Fatal(err)
		}
		r := &Run{JS: js, Snapshots: snaps, LB: tgt, Port: 8080}
		type up struct {
			vm   eventbus.VM
			have worker.Objects
		}
		var alive []up
		fmt.Printf("%8s %12s %10s %12s\n", "vms", "heap_inuse", "vms_keys", "vms_bytes")
		for i := range *vms {
			vm := r.VM(i)
			have, err := r.Converge(ctx, vm, nil)
			if err != nil {
				b.Fatalf("create %s: %v", vm.Key(), err)
			}
			alive = append(alive, up{vm, have})
			if len(alive) > *live {
				d := alive[0]
				alive = alive[1:]
				d.vm.Kind, d.vm.State, d.vm.NICs = eventbus.KindDeleted, "DONE", nil
				d.vm.Version.Seq++
				if _, err := r.Converge(ctx, d.vm, d.have); err != nil {
					b.Fatalf("delete %s: %v", d.vm.Key(), err)
				}
			}
			if (i+1)%*every == 0 {
				if err := r.Sweep(ctx); err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				keys, bytes, err := r.Size(ctx)
				if err != nil {
					b.Fatal(err)
				}
				fmt.Printf("%8d %12d %10d %12d\n", i+1, m.HeapInuse, keys, bytes)
			}
		}
	}
}
