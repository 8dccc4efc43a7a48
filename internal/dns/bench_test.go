package dns

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// BenchmarkApply1000 creates 1,000 VMs concurrently (A, TXT, PTR each) and
// deletes them again, against a real BIND, and reports records/s and UPDATE
// messages per iteration.
func BenchmarkApply1000(b *testing.B) {
	bind := testenv.StartBIND(b, testenv.BINDOptions{})
	cfg := testConfig(bind)
	if v := os.Getenv("BENCH_MAXREC"); v != "" {
		cfg.Batch.MaxRecords, _ = strconv.Atoi(v)
	}
	tg := newTarget(b, cfg)
	var records, messages uint64
	var elapsed time.Duration
	for i := 0; b.Loop(); i++ {
		vms := make([]*eventbus.VM, 1000)
		for j := range vms {
			vms[j] = testVM(fmt.Sprintf("b%d-%d", i, j), fmt.Sprintf("bench%d-%d", i, j), fmt.Sprintf("10.%d.%d.%d", 100+i%100, j/250, j%250+1))
		}
		before := tg.Stats()
		start := time.Now()
		got, errs := applyAll(b, tg, vms, nil)
		for _, vm := range vms {
			vm.Kind = eventbus.KindDeleted
		}
		_, errs2 := applyAll(b, tg, vms, got)
		elapsed += time.Since(start)
		for j := range errs {
			if errs[j] != nil || errs2[j] != nil {
				b.Fatalf("vm %d: %v / %v", j, errs[j], errs2[j])
			}
		}
		after := tg.Stats()
		records += after.Records - before.Records
		messages += after.Messages - before.Messages
	}
	b.ReportMetric(float64(records)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(messages)/float64(b.N), "msgs/op")
}

// BenchmarkVerify reads 200 converged VMs (A, TXT, PTR each) back from a
// real BIND, one VM after the other as the periodic verification does, and
// reports the queries and the time per VM: what bounds verify_rate.
func BenchmarkVerify(b *testing.B) {
	bind := testenv.StartBIND(b, testenv.BINDOptions{})
	tg := newTarget(b, testConfig(bind))
	vms := manyVMs(200)
	got, errs := applyAll(b, tg, vms, nil)
	for i, err := range errs {
		if err != nil {
			b.Fatalf("vm %d: %v", i, err)
		}
	}
	before := tg.Stats().Queries
	var verified int
	for b.Loop() {
		for i, vm := range vms {
			want, err := tg.Desired(vm)
			if err != nil {
				b.Fatal(err)
			}
			rb, err := tg.Verify(b.Context(), worker.Request{VM: vm, Have: got[i], Want: want})
			if err != nil {
				b.Fatal(err)
			}
			if fs := worker.Compare(want, rb); len(fs) != 0 {
				b.Fatalf("vm %d: drift %v", i, fs)
			}
			verified++
		}
	}
	b.ReportMetric(float64(tg.Stats().Queries-before)/float64(verified), "queries/vm")
	b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(verified), "ms/vm")
}
