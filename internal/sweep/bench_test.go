package sweep_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmglue/vmglue/internal/sweep"
)

// poolSize is the cloud of BenchmarkSweep (`make bench-sweep`).
const poolSize = 10_000

// generatedVM is the corpus's real POWEROFF VM (6 HISTORY records, 1 NIC,
// snapshots) as VM i: id, name, addresses and MAC replaced, its pool body
// as large as a real one.
func generatedVM(tmpl string, i int) string {
	ip := fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)
	mac := fmt.Sprintf("02:00:0a:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff)
	r := strings.NewReplacer("<ID>621</ID>", fmt.Sprintf("<ID>%d</ID>", i), "<NAME>kolab</NAME>", fmt.Sprintf("<NAME>vm%d</NAME>", i),
		"192.168.2.108", ip, "02:00:c0:a8:02:6c", mac, "one-621-0", fmt.Sprintf("one-%d-0", i))
	return r.Replace(tmpl)
}

// BenchmarkSweep sweeps a generated pool of 10,000 VMs, served by the
// in-test oned in pages of 500, against the 10,000 snapshots vmglue holds
// of them (nothing changed: no event), and prints the time, the events
// published and the memory. Target: under 10 s.
func BenchmarkSweep(b *testing.B) {
	e := newEnvPaged(b, 500)
	tmpl := corpus(b, "vm-poweroff-1nic-snapshot.xml")
	for i := range poolSize {
		if err := e.one.SetVM(generatedVM(tmpl, 1000+i)); err != nil {
			b.Fatal(err)
		}
	}
	// The first sweep publishes every VM; the workers' merge makes them
	// the known snapshots.
	t0 := time.Now()
	first, err := e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{})
	if err != nil || first.New != poolSize {
		b.Fatalf("first sweep: %s %v", first.Summary(), err)
	}
	fmt.Printf("first sweep (nothing known): %d events published in %s; snapshots stored in %s\n",
		first.Published(), first.Duration.Round(time.Millisecond), (time.Since(t0) - first.Duration).Round(time.Millisecond))
	stored := len(e.events())

	s := e.sweeper(sweep.Options{}, nil)
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cpu0 := cpuTime()
	b.ResetTimer()
	var r sweep.Result
	for b.Loop() {
		if r, err = s.Run(ctx, sweep.Mode{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cpu := (cpuTime() - cpu0) / time.Duration(b.N)
	runtime.ReadMemStats(&after)
	if r.Listed != poolSize || r.Known != poolSize || r.Published() != 0 || len(e.events()) != stored {
		b.Fatalf("unchanged sweep: %s", r.Summary())
	}
	mb := func(n uint64) float64 { return float64(n) / (1 << 20) }
	fmt.Printf("sweep of %d VMs against %d snapshots: %.2fs (CPU %.2fs, the in-test oned's included), %d events published, %.0f MB allocated per sweep, heap in use %.0f MB, %s\n",
		poolSize, r.Known, r.Duration.Seconds(), cpu.Seconds(), r.Published(), mb(after.TotalAlloc-before.TotalAlloc)/float64(b.N), mb(after.HeapInuse),
		map[bool]string{true: "target < 10s met", false: "TARGET < 10s MISSED"}[r.Duration < 10*time.Second])
	b.ReportMetric(r.Duration.Seconds(), "s/sweep")
	b.ReportMetric(float64(r.Published()), "events")
}

// cpuTime is the CPU time (user + system) of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
