package worker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

// memSurveyor is memVerifier with Survey (a test double for the runtime's
// own tests): it lists two marked objects, one a record holds and one of
// a VM no record knows, and counts its calls.
type memSurveyor struct {
	*memVerifier
	calls atomic.Int64
}

func (m *memSurveyor) Survey(context.Context) ([]worker.Marked, error) {
	m.calls.Add(1)
	p1 := testVM("s1")
	return []worker.Marked{
		{VM: p1.Key(), Key: "A " + p1.Name, Found: "held"},
		{VM: "one.ghost", Key: "A webghost", Found: "stray"},
	}, nil
}

// After each pass of the periodic verification the runtime reports the
// marked objects no record holds, once per pass, and never the held one;
// nothing is removed.
func TestPeriodicVerificationSurvey(t *testing.T) {
	m := &memSurveyor{memVerifier: &memVerifier{memTarget: newMemTarget("mem")}}
	h := workertest.NewHarness(t, m.Name())
	o := workertest.TestOptions()
	o.VerifyInterval, o.VerifyRate = 50*time.Millisecond, 100
	h.StartRunner(m, o)
	h.Publish(testVM("s1"))
	h.WaitIdle()
	h.Eventually("three surveys", func() bool { return m.calls.Load() >= 3 })
	// A survey counts its stray after it returned: read the calls around.
	before := float64(m.calls.Load())
	stray := metric(t, h, "vmglue_worker_drift_found_total", "kind", worker.DriftStray)
	after := float64(m.calls.Load())
	if stray < before-1 || stray > after {
		t.Fatalf("%g stray findings after %g to %g surveys, want one per survey", stray, before, after)
	}
	s1 := testVM("s1")
	if got := m.observe(&s1)["A "+s1.Name]; got != "10.0.0.1" {
		t.Fatalf("held object after the surveys: %q", got)
	}
}
