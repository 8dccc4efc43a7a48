package workertest

import (
	"context"
	"errors"
	"maps"
	"sync"

	"github.com/vmglue/vmglue/internal/worker"
)

// Call is one Apply the runtime made.
type Call struct {
	VM         string // "<cloud>.<vmid>"
	Have, Want worker.Objects
	Unverified worker.Objects // Request.Unverified
}

// Spy wraps a Target, records every Apply and can fault the next ones: it
// is how the suite cancels a context or "crashes" around a real Apply.
type Spy struct {
	worker.Target

	mu    sync.Mutex
	calls []Call
	fault []Fault
}

// Fault is what the Spy does to one Apply call.
type Fault int

// Faults.
const (
	// CancelContext calls the target with an already cancelled context.
	CancelContext Fault = iota + 1
	// CrashBefore panics before calling the target, after the runtime wrote
	// its pending objects: a crash between the registry write and Apply.
	CrashBefore
	// CrashAfter calls the target, then panics before the runtime can
	// record the result: a crash right after the side effects.
	CrashAfter
	// LostAnswer calls the target, then reports nothing done and a
	// transient error: an update that reached the target but whose answer
	// was lost (a timeout after the server applied it).
	LostAnswer
	// Down does not call the target: it reports have unchanged and a
	// transient error, as a target that cannot be reached does.
	Down
)

// Transient errors of the faults.
var (
	errLostAnswer = errors.New("workertest: simulated lost answer")
	errDown       = errors.New("workertest: simulated target down")
)

// NewSpy wraps t.
func NewSpy(t worker.Target) *Spy { return &Spy{Target: t} }

// Inject makes the next Apply calls fail with the given faults, in order.
func (s *Spy) Inject(f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = append(s.fault, f...)
}

// Calls returns the Apply calls so far.
func (s *Spy) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Changes returns the Apply calls whose have and want differ: the calls
// that can change the target.
func (s *Spy) Changes() []Call {
	var out []Call
	for _, c := range s.Calls() {
		if !maps.Equal(c.Have, c.Want) {
			out = append(out, c)
		}
	}
	return out
}

// Apply records the call and applies the next fault, if any.
func (s *Spy) Apply(ctx context.Context, req worker.Request) (worker.Objects, error) {
	s.mu.Lock()
	s.calls = append(s.calls, Call{VM: req.VM.Key(), Have: maps.Clone(req.Have), Want: maps.Clone(req.Want), Unverified: maps.Clone(req.Unverified)})
	var f Fault
	if len(s.fault) > 0 {
		f, s.fault = s.fault[0], s.fault[1:]
	}
	s.mu.Unlock()
	switch f {
	case CancelContext:
		c, cancel := context.WithCancel(ctx)
		cancel()
		ctx = c
	case CrashBefore:
		panic("workertest: simulated crash before apply")
	case CrashAfter:
		_, _ = s.Target.Apply(ctx, req)
		panic("workertest: simulated crash after apply")
	case LostAnswer:
		_, _ = s.Target.Apply(ctx, req)
		return req.Have, errLostAnswer
	case Down:
		return req.Have, errDown
	}
	return s.Target.Apply(ctx, req)
}

// verifyingSpy is a Spy of a worker.Verifier: it passes Verify on, so that
// the runtime verifies the target under test.
type verifyingSpy struct {
	*Spy
	v worker.Verifier
}

func (s verifyingSpy) Verify(ctx context.Context, req worker.Request) (worker.Readback, error) {
	return s.v.Verify(ctx, req)
}

// runnable returns what the runner gets: the Spy, with Verify when the
// target has it.
func (s *Spy) runnable() worker.Target {
	if v, ok := s.Target.(worker.Verifier); ok {
		return verifyingSpy{Spy: s, v: v}
	}
	return s
}
