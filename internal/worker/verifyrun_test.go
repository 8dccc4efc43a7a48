package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

// memVerifier is memTarget with Verify (a test double for the runtime's own
// tests, see memTarget): it reads the store back and records when.
type memVerifier struct {
	*memTarget
	vmu   sync.Mutex
	calls []time.Time
}

func (m *memVerifier) Verify(_ context.Context, req worker.Request) (worker.Readback, error) {
	m.vmu.Lock()
	m.calls = append(m.calls, time.Now())
	m.vmu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	rb := worker.Readback{Present: worker.Objects{}, Foreign: worker.Objects{}}
	for _, objs := range []worker.Objects{req.Have, req.Want} {
		for k := range objs {
			v, ok := m.store[k]
			_, ours := req.Have[k]
			switch {
			case ok && ours:
				rb.Present[k] = v
			case ok:
				rb.Foreign[k] = v
			}
		}
	}
	return rb, nil
}

func (m *memVerifier) verifyCalls() []time.Time {
	m.vmu.Lock()
	defer m.vmu.Unlock()
	return append([]time.Time(nil), m.calls...)
}

// The periodic verification repairs an object deleted behind the worker's
// back, and a pass verifies at most VerifyRate VMs per second.
func TestPeriodicVerification(t *testing.T) {
	m := &memVerifier{memTarget: newMemTarget("mem")}
	h := workertest.NewHarness(t, m.Name())
	o := workertest.TestOptions()
	o.VerifyInterval, o.VerifyRate = 50*time.Millisecond, 10
	h.StartRunner(m, o)
	vms := []string{"p1", "p2", "p3", "p4"}
	for _, id := range vms {
		h.Publish(testVM(id))
	}
	h.WaitIdle()
	p1 := testVM("p1")
	m.mu.Lock()
	delete(m.store, "A "+p1.Name)
	m.mu.Unlock()
	h.Eventually("A of p1 repaired", func() bool { return m.observe(&p1)["A "+p1.Name] == "10.0.0.1" })

	// Four VMs at 10 per second: a pass spans at least 3 × 100 ms.
	h.Eventually("a full pass verified", func() bool { return len(m.verifyCalls()) >= 8 })
	calls := m.verifyCalls()
	for i := 0; i+3 < len(calls); i++ {
		if d := calls[i+3].Sub(calls[i]); d < 250*time.Millisecond {
			t.Fatalf("4 verifications within %s at verify_rate 10/s", d)
		}
	}
	if got := metric(t, h, "vmglue_worker_drift_repaired_total", "", ""); got != 1 {
		t.Errorf("drift repaired %g, want 1", got)
	}
}
