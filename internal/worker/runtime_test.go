package worker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

// metric returns the value of a counter or gauge of worker "mem" with the
// given extra label (or the histogram's sample count).
func metric(t *testing.T, h *workertest.Harness, name, label, value string) float64 {
	t.Helper()
	return h.Metric(name, label, value)
}

func start(t *testing.T, opts func(*worker.Options)) (*workertest.Harness, *memTarget) {
	t.Helper()
	m := newMemTarget("mem")
	h := workertest.NewHarness(t, m.Name())
	o := workertest.TestOptions()
	if opts != nil {
		opts(&o)
	}
	h.StartRunner(m, o)
	return h, m
}

func TestSlowVMDoesNotHoldOthers(t *testing.T) {
	h, m := start(t, nil)
	release := make(chan struct{})
	m.setHook(func(ctx context.Context, vm *eventbus.VM) error {
		if vm.ID == "slow" {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	slow, fast := testVM("slow"), testVM("fast")
	h.Publish(slow)
	h.Eventually("slow VM in flight", func() bool { return metric(t, h, "vmglue_worker_in_flight", "", "") == 1 })
	h.Publish(fast)
	h.Eventually("fast VM converged", func() bool { return m.observe(&fast)["A webfast"] == "10.0.0.1" })
	if got := m.observe(&slow); len(got) != 0 {
		t.Fatalf("slow VM applied before release: %v", got)
	}
	close(release)
	h.WaitIdle()
	if got := m.observe(&slow); len(got) != 2 {
		t.Fatalf("slow VM after release: %v", got)
	}
}

func TestSameVMSerialisedAcrossInstances(t *testing.T) {
	h, m := start(t, nil)
	o := workertest.TestOptions()
	h.StartRunner(m, o) // a second instance on the same durable consumer
	m.setHook(func(context.Context, *eventbus.VM) error {
		time.Sleep(time.Millisecond) // widen the window a concurrent Apply would hit
		return nil
	})
	vm := testVM("7")
	var other eventbus.VM
	for i := range 50 {
		vm.Version.Seq = int64(i + 1)
		vm.NICs[0].IP = fmt.Sprintf("10.0.1.%d", i+1)
		h.Publish(vm)
		other = testVM(fmt.Sprintf("o%d", i))
		h.Publish(other)
	}
	h.WaitIdle()
	if n := m.maxConcurrent(); n != 1 {
		t.Fatalf("max concurrent Apply per VM = %d, want 1", n)
	}
	if got := m.observe(&vm)["A web7"]; got != "10.0.1.50" {
		t.Fatalf("VM converged to %q, want the newest snapshot 10.0.1.50", got)
	}
	if got := m.observe(&other); len(got) != 2 {
		t.Fatalf("other VMs not converged: %v", got)
	}
}

func TestTransientErrorRetriedWithBackoff(t *testing.T) {
	const base = 40 * time.Millisecond
	h, m := start(t, func(o *worker.Options) { o.Backoff = worker.Backoff{Base: base, Max: time.Second, Jitter: 0.2} })
	var (
		mu       sync.Mutex
		attempts []time.Time
	)
	m.setHook(func(context.Context, *eventbus.VM) error {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, time.Now())
		if len(attempts) <= 2 {
			return errors.New("dns server timeout")
		}
		return nil
	})
	vm := testVM("1")
	h.Publish(vm)
	h.WaitIdle()
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 3 {
		t.Fatalf("%d attempts, want 3", len(attempts))
	}
	for i, min := range []time.Duration{base * 8 / 10, 2 * base * 8 / 10} {
		if gap := attempts[i+1].Sub(attempts[i]); gap < min {
			t.Errorf("retry %d after %s, want at least %s", i+1, gap, min)
		}
	}
	if got := m.observe(&vm); len(got) != 2 {
		t.Fatalf("not converged: %v", got)
	}
	for _, c := range []struct {
		name, label, value string
		want               float64
	}{
		{"vmglue_worker_events_total", "result", "retry", 2},
		{"vmglue_worker_events_total", "result", "ok", 1},
		{"vmglue_worker_retries_total", "", "", 2},
		{"vmglue_worker_dead_letters_total", "", "", 0},
		{"vmglue_worker_converge_seconds", "", "", 3},
		{"vmglue_worker_in_flight", "", "", 0},
	} {
		if got := metric(t, h, c.name, c.label, c.value); got != c.want {
			t.Errorf("%s{%s=%q} = %g, want %g", c.name, c.label, c.value, got, c.want)
		}
	}
}

func TestDeadLetters(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		maxDeliver int
		reason     string
		attempts   int
	}{
		{"permanent", worker.Permanent(errors.New("invalid hostname")), 10, worker.ReasonPermanent, 1},
		{"conflict", worker.Permanent(fmt.Errorf("A web1: %w", worker.ErrConflict)), 10, worker.ReasonConflict, 1},
		{"max deliveries", errors.New("connection refused"), 3, worker.ReasonMaxDeliveries, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, m := start(t, func(o *worker.Options) { o.MaxDeliver = tt.maxDeliver })
			var calls atomic.Int32
			m.setHook(func(context.Context, *eventbus.VM) error { calls.Add(1); return tt.err })
			ev := h.Publish(testVM("9"))
			h.WaitIdle()
			if n := int(calls.Load()); n != tt.attempts {
				t.Fatalf("%d attempts, want %d", n, tt.attempts)
			}
			dls := h.DeadLetters()
			if len(dls) != 1 {
				t.Fatalf("%d dead letters, want 1", len(dls))
			}
			d := dls[0]
			if d.Subject != "vmglue.dlq.mem.one.9" || d.Header.Get(worker.HeaderWorker) != "mem" ||
				d.Header.Get(worker.HeaderReason) != tt.reason || d.Reason != tt.reason || d.Worker != "mem" ||
				d.Deliveries != uint64(tt.attempts) || d.FailedAt.IsZero() || d.Error == "" {
				t.Fatalf("dead letter %+v", d)
			}
			got, err := eventbus.Unmarshal(d.Event)
			if err != nil || got.ID != ev.ID {
				t.Fatalf("dead letter event %s: %v, want %s", d.Event, err, ev.ID)
			}
			if n := metric(t, h, "vmglue_worker_dead_letters_total", "", ""); n != 1 {
				t.Fatalf("dead_letters_total = %g", n)
			}
			if n := metric(t, h, "vmglue_worker_events_total", "result", "dead_letter"); n != 1 {
				t.Fatalf("events_total{dead_letter} = %g", n)
			}
		})
	}
}

func TestInvalidEventDeadLettered(t *testing.T) {
	h, _ := start(t, nil)
	ctx := context.Background()
	if _, err := h.JS.Publish(ctx, "vmglue.vm.one.3.running", []byte(`{"specversion":"0.3"}`)); err != nil {
		t.Fatal(err)
	}
	h.WaitIdle()
	dls := h.DeadLetters()
	if len(dls) != 1 || dls[0].Reason != worker.ReasonInvalid || dls[0].Subject != "vmglue.dlq.mem.one.3" {
		t.Fatalf("dead letters %+v", dls)
	}
}

// An event of a major vmglueversion this vmglue does not know is
// dead-lettered with reason "unknown version", not converged; one without
// vmglueversion is invalid; a newer minor version of the known major is
// converged.
func TestUnknownVersionDeadLettered(t *testing.T) {
	h, _ := start(t, nil)
	tests := []struct {
		vm, version string
		reason      string // "" = converged
	}{
		{"21", "2", worker.ReasonVersion},
		{"22", "2.1", worker.ReasonVersion},
		{"23", "", worker.ReasonInvalid},
		{"24", "1.7", ""},
		{"25", "1", ""},
	}
	for _, tt := range tests {
		ev, err := eventbus.NewEvent(testVM(tt.vm))
		if err != nil {
			t.Fatal(err)
		}
		ev.VmglueVersion = tt.version
		h.Replay(ev)
	}
	h.WaitIdle()
	dead := map[string]string{}
	for _, d := range h.DeadLetters() {
		dead[d.Subject] = d.Reason
	}
	for _, tt := range tests {
		vm := testVM(tt.vm)
		if reason := dead["vmglue.dlq.mem.one."+tt.vm]; reason != tt.reason {
			t.Errorf("vmglueversion %q: dead letter %q, want %q", tt.version, reason, tt.reason)
		}
		if rec := h.Record(&vm); (rec != nil) != (tt.reason == "") {
			t.Errorf("vmglueversion %q: record %+v", tt.version, rec)
		}
	}
}

func TestRequeueDoesNotConsumeDeliveries(t *testing.T) {
	h, m := start(t, func(o *worker.Options) { o.MaxDeliver = 1 })
	var calls atomic.Int32
	m.setHook(func(context.Context, *eventbus.VM) error {
		if calls.Add(1) <= 3 {
			return worker.Requeue(20*time.Millisecond, "server draining")
		}
		return nil
	})
	vm := testVM("4")
	h.Publish(vm)
	h.WaitIdle()
	if calls.Load() != 4 || len(h.DeadLetters()) != 0 || len(m.observe(&vm)) != 2 {
		t.Fatalf("calls %d, dead letters %d, observed %v", calls.Load(), len(h.DeadLetters()), m.observe(&vm))
	}
	if n := metric(t, h, "vmglue_worker_events_total", "result", "requeue"); n != 3 {
		t.Fatalf("events_total{requeue} = %g, want 3", n)
	}
}
