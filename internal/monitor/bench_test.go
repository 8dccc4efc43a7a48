package monitor

import (
	"context"
	"fmt"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// BenchmarkFileSDApply is the Apply of one VM's file_sd entry into a job
// that already holds 10 000 VMs (the whole file is rewritten, fsync'd and
// renamed; concurrent Applies share a write: 32 per core here, serve
// converges 64 VMs at once by default). It reports the file's VMs and the
// files written per Apply.
func BenchmarkFileSDApply(b *testing.B) {
	tg, err := New(Config{FileSD: &FileSDConfig{Dir: b.TempDir(), Jobs: []Job{{Name: "node", Port: 9100,
		Labels: map[string]string{"os": "attribute:OS"}}}}}, worker.Deps{Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	vm := func(i int) *eventbus.VM {
		return &eventbus.VM{Cloud: "one", ID: fmt.Sprint(i), Name: fmt.Sprintf("vm%d", i), Owner: "alice",
			Kind: eventbus.KindRunning, Attributes: map[string]string{"OS": "debian"},
			NICs: []eventbus.NIC{{IP: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)}}}
	}
	ctx := context.Background()
	for i := range 10000 {
		want, _ := tg.Desired(vm(i))
		rev, _ := tg.store.put(ctx, "node", vm(i).Key(), want["file_sd/node"])
		tg.sd.set("node", vm(i).Key(), want["file_sd/node"], rev)
	}
	b.SetParallelism(32)
	writes := func() float64 {
		var m dto.Metric
		_ = tg.m.writes.WithLabelValues("node").Write(&m)
		return m.GetCounter().GetValue()
	}
	before := writes()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			v := vm(i % 10000)
			v.Attributes = map[string]string{"OS": fmt.Sprint("os", i)}
			want, _ := tg.Desired(v)
			if _, err := tg.Apply(ctx, worker.Request{VM: v, Want: want}); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	b.StopTimer()
	entries, _ := ReadFile(tg.cfg.FileSD.Dir + "/node.json")
	b.ReportMetric(float64(len(entries)), "vms")
	b.ReportMetric((writes()-before)/float64(b.N), "writes/op")
}
