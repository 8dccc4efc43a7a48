// Package opstest is the test bed of the ops functions and of the commands
// that print them: a real nats-server (workertest.Harness) with running
// workers whose target is a map, so that tests can make them fail and
// produce records and dead letters as the real runtime writes them.
package opstest

import (
	"context"
	"errors"
	"maps"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

// MapTarget is a tiny in-memory worker.Target: one "A <name>" object per
// VM. It is an honest test double for the runtime, not for DNS: the tests
// that use it are about what the ops functions read from the bus, which the
// real runtime (worker.Runner on a real nats-server) writes. While Fail is
// set, Apply fails permanently, so the runtime dead-letters the event.
type MapTarget struct {
	name string
	Fail atomic.Bool
}

// Name is the worker name.
func (m *MapTarget) Name() string { return m.name }

// Desired is one A object with the first NIC's address, none once deleted.
func (m *MapTarget) Desired(vm *eventbus.VM) (worker.Objects, error) {
	if vm.Deleted() || len(vm.NICs) == 0 {
		return worker.Objects{}, nil
	}
	return worker.Objects{"A " + vm.Name: vm.NICs[0].IP}, nil
}

// Apply succeeds with want, or fails permanently while Fail is set.
func (m *MapTarget) Apply(_ context.Context, req worker.Request) (worker.Objects, error) {
	if m.Fail.Load() {
		return nil, worker.Permanent(errors.New("boom"))
	}
	return maps.Clone(req.Want), nil
}

// Env is a provisioned nats-server with one runner per worker.
type Env struct {
	*workertest.Harness
	Targets map[string]*MapTarget
}

// New starts a provisioned nats-server and one runner per worker name.
func New(t testing.TB, workers ...string) *Env {
	t.Helper()
	e := &Env{Harness: workertest.NewHarness(t, workers[0]), Targets: map[string]*MapTarget{}}
	for _, w := range workers {
		e.Targets[w] = &MapTarget{name: w}
		e.StartRunner(e.Targets[w], workertest.TestOptions())
	}
	return e
}

// Idle waits until every worker has settled every stored event.
func (e *Env) Idle(t testing.TB) {
	t.Helper()
	for w := range e.Targets {
		testenv.WaitFor(t, 20*time.Second, "worker "+w+" idle", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			c, err := e.JS.Consumer(ctx, eventbus.StreamEvents, worker.ConsumerName(w))
			if err != nil {
				return false
			}
			ci, err := c.Info(ctx)
			if err != nil || ci.NumPending != 0 || ci.NumAckPending != 0 {
				return false
			}
			st, err := e.JS.Stream(ctx, eventbus.StreamEvents)
			return err == nil && ci.AckFloor.Stream >= st.CachedInfo().State.LastSeq
		})
	}
}

// DeadLetters returns how many dead letters the stream holds.
func (e *Env) DeadLetters(t testing.TB) int {
	t.Helper()
	dls, err := worker.ListDeadLetters(context.Background(), e.JS, "")
	if err != nil {
		t.Fatal(err)
	}
	return len(dls)
}

// WaitDeadLetters waits until the stream holds n dead letters.
func (e *Env) WaitDeadLetters(t testing.TB, n int) {
	t.Helper()
	testenv.WaitFor(t, 20*time.Second, "dead letters", func() bool { return e.DeadLetters(t) == n })
}

// VM is a running OpenNebula VM of cloud "one" with one address, 10.0.0.<id>.
func VM(id, kind string) eventbus.VM {
	return eventbus.VM{Cloud: "one", CloudType: "opennebula", ID: id, Name: "web" + id, State: "ACTIVE", LCMState: "RUNNING",
		Kind: kind, Host: "node1", NICs: []eventbus.NIC{{ID: "0", IP: "10.0.0." + id}}, Version: eventbus.Version{Seq: 1, Changed: time.Now().UnixNano()}}
}
