package worker_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

// BenchmarkConverge measures what the runtime costs per event, as
// `vmglue serve` pays it: b.N VMs created and then deleted through one
// worker (the in-memory target, so that only the runtime and JetStream are
// measured) on a real nats-server in this process, its JetStream work
// included. The events are in the stream before each phase starts; the
// figure is the CPU time (user + system) of the process per 1,000 events,
// which hardly depends on what else the machine runs. Run it with e.g.
//
//	go test -run '^$' -bench BenchmarkConverge -benchtime 1000x ./internal/worker
func BenchmarkConverge(b *testing.B) {
	m := newMemTarget("mem")
	h := workertest.NewHarness(b, m.Name())
	opts := workertest.TestOptions()
	opts.Concurrency = worker.DefaultConcurrency
	vms := make([]string, b.N)
	for i := range vms {
		vms[i] = fmt.Sprint(100000 + i)
	}
	var (
		cpu, wall time.Duration
		msgs      int64
	)
	for _, phase := range []string{"create", "delete"} {
		for _, id := range vms {
			vm := testVM(id)
			if phase == "delete" {
				vm = workertest.Deleted(vm)
			}
			h.Publish(vm)
		}
		c0, t0, m0 := cpuTime(b), time.Now(), serverMsgs(b, h)
		h.StartRunner(m, opts)
		h.WaitIdle()
		cpu, wall = cpu+cpuTime(b)-c0, wall+time.Since(t0)
		h.StopAll()
		msgs += serverMsgs(b, h) - m0
	}
	m.mu.Lock()
	left := len(m.store)
	m.mu.Unlock()
	if left != 0 {
		b.Fatalf("%d objects left after the deletes", left)
	}
	per := cpu.Seconds() * 1000 / float64(2*b.N)
	b.ReportMetric(per, "cpu-s/1000-events")
	b.ReportMetric(float64(msgs)/float64(2*b.N), "msgs/event")
	fmt.Printf("runtime: %d events (%d VMs created, deleted) in %.2fs, CPU %.2fs: %.3fs per 1,000 events, %.1f messages in and out of the server per event\n",
		2*b.N, b.N, wall.Seconds(), cpu.Seconds(), per, float64(msgs)/float64(2*b.N))
}

// serverMsgs is how many messages the server received and sent so far:
// each JetStream round trip of the runtime is two.
func serverMsgs(b *testing.B, h *workertest.Harness) int64 {
	v, err := h.Server.Varz(nil)
	if err != nil {
		b.Fatal(err)
	}
	return v.InMsgs + v.OutMsgs
}

// cpuTime is the CPU time (user + system) of this process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
