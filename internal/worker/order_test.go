package worker_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

// teardown is three in-memory workers on one bus: "second" is ordered
// after "first" on delete, "free" after nobody. first drains: on delete it
// asks to be requeued until drained is set, as the lb worker does while
// sessions run.
type teardown struct {
	h                   *workertest.Harness
	first, second, free *memTarget
	runners             map[string]*worker.Runner
	drained             atomic.Bool
	// firstLeftAt is what second's delete found of first's objects.
	mu          sync.Mutex
	firstLeftAt []worker.Objects
}

func newTeardown(t *testing.T, opts func(*worker.Options)) *teardown {
	t.Helper()
	td := &teardown{first: newMemTarget("first"), second: newMemTarget("second"), free: newMemTarget("free"),
		runners: map[string]*worker.Runner{}}
	td.h = workertest.NewHarness(t, "second")
	td.first.setHook(func(_ context.Context, vm *eventbus.VM) error {
		if vm.Deleted() && !td.drained.Load() {
			return worker.Requeue(10*time.Millisecond, "draining")
		}
		return nil
	})
	td.second.setHook(func(_ context.Context, vm *eventbus.VM) error {
		if vm.Deleted() {
			td.mu.Lock()
			td.firstLeftAt = append(td.firstLeftAt, td.first.observe(vm))
			td.mu.Unlock()
		}
		return nil
	})
	o := workertest.TestOptions()
	o.TeardownPoll = 20 * time.Millisecond
	o.TeardownWait = time.Minute
	if opts != nil {
		opts(&o)
	}
	for _, m := range []*memTarget{td.first, td.second, td.free} {
		td.runners[m.name] = td.h.NewRunner(m, o)
	}
	td.runners["second"].After(eventbus.KindDeleted, td.runners["first"])
	return td
}

// boot runs every runner but those in skip and converges vm everywhere
// (first too, also when it is skipped: it converged the VM earlier).
func (td *teardown) boot(vm eventbus.VM, skip ...string) {
	td.h.T.Helper()
	for name, r := range td.runners {
		if !contains(skip, name) {
			td.h.Run(r)
		}
	}
	td.h.Publish(vm)
	td.h.Eventually("vm converged everywhere", func() bool {
		return len(td.first.observe(&vm)) == 2 && len(td.second.observe(&vm)) == 2 && len(td.free.observe(&vm)) == 2
	})
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func deleted(vm eventbus.VM) eventbus.VM {
	vm.Kind, vm.State, vm.LCMState = eventbus.KindDeleted, "DONE", ""
	vm.Version.Seq++
	return vm
}

// On delete, second removes its objects only once first has settled the
// VM (its registry record holds nothing), free at once; second's converge
// waits without holding a slot: another VM converges meanwhile.
func TestTeardownOrder(t *testing.T) {
	td := newTeardown(t, func(o *worker.Options) { o.Concurrency = 1 })
	vm := testVM("1")
	td.boot(vm)

	td.h.Publish(deleted(vm))
	td.h.Eventually("free removed its objects (no order)", func() bool { return len(td.free.observe(&vm)) == 0 })
	td.h.Eventually("second waiting, recorded", func() bool {
		rec := td.h.Record(&vm)
		return rec != nil && rec.Waiting != nil && metric(t, td.h, "vmglue_worker_teardown_waits_total", "", "") >= 3
	})
	if got := td.second.observe(&vm); len(got) != 2 {
		t.Fatalf("second removed %v while first drains", got)
	}
	if w := td.h.Record(&vm).Waiting; w.Kind != eventbus.KindDeleted || len(w.For) != 1 || w.For[0] != "first" {
		t.Fatalf("recorded wait %+v, want deleted, for first", w)
	}
	// Concurrency 1 and a VM waiting: another VM is not held up.
	other := testVM("2")
	td.h.Publish(other)
	td.h.Eventually("another VM converged by second meanwhile", func() bool { return len(td.second.observe(&other)) == 2 })

	td.drained.Store(true)
	td.h.Eventually("second removed its objects", func() bool { return len(td.second.observe(&vm)) == 0 })
	td.checkFirstWentFirst(t)
	if n := metric(t, td.h, "vmglue_worker_teardown_timeouts_total", "after", "first"); n != 0 {
		t.Fatalf("%g teardown timeouts, want 0", n)
	}
}

// A dependency that never settles (not running here, or dead-lettering
// the VM) holds second only for TeardownWait; then second goes on and
// counts it.
func TestTeardownOrderLimit(t *testing.T) {
	tests := []struct {
		name string
		skip []string        // runners not started
		hook func(*teardown) // first's behaviour on delete
	}{
		{"dependency down", []string{"first"}, nil},
		{"dependency dead-letters the delete", nil, func(td *teardown) {
			td.first.setHook(func(_ context.Context, vm *eventbus.VM) error {
				if vm.Deleted() {
					return worker.Permanent(fmt.Errorf("refused"))
				}
				return nil
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const limit = 500 * time.Millisecond
			td := newTeardown(t, func(o *worker.Options) { o.TeardownWait = limit })
			vm := testVM("3")
			if contains(tt.skip, "first") {
				// first converged the VM once, in an earlier life.
				stop := td.h.Run(td.runners["first"])
				td.h.Publish(vm)
				td.h.Eventually("first converged", func() bool { return len(td.first.observe(&vm)) == 2 })
				stop()
				td.runners["first"] = nil
			}
			td.boot(vm, tt.skip...)
			if tt.hook != nil {
				tt.hook(td)
			}
			t0 := time.Now()
			td.h.Publish(deleted(vm))
			td.h.Eventually("second removed its objects after the limit", func() bool { return len(td.second.observe(&vm)) == 0 })
			if d := time.Since(t0); d < limit {
				t.Fatalf("second went on after %s, before the limit %s", d, limit)
			}
			if len(td.first.observe(&vm)) == 0 {
				t.Fatal("first removed its objects: the test proves nothing")
			}
			if n := metric(t, td.h, "vmglue_worker_teardown_timeouts_total", "after", "first"); n < 1 {
				t.Fatalf("teardown timeouts after first = %g, want at least 1", n)
			}
		})
	}
}

// The start of a wait lives in the registry: second stopped while it
// waits and started again (a crash of serve) keeps waiting, from the same
// start, and still removes its objects only after first.
func TestTeardownOrderSurvivesRestart(t *testing.T) {
	td := newTeardown(t, nil)
	vm := testVM("4")
	stopSecond := td.h.Run(td.runners["second"])
	td.boot(vm, "second")
	td.h.Publish(deleted(vm))
	var since time.Time
	td.h.Eventually("second waiting", func() bool {
		rec := td.h.Record(&vm)
		if rec != nil && rec.Waiting != nil {
			since = rec.Waiting.Since
			return true
		}
		return false
	})
	stopSecond()
	waits := metric(t, td.h, "vmglue_worker_teardown_waits_total", "", "")

	o := workertest.TestOptions()
	o.TeardownPoll = 20 * time.Millisecond
	again := td.h.NewRunner(td.second, o)
	again.After(eventbus.KindDeleted, td.runners["first"])
	td.h.Run(again)
	// The redelivered delete is converged by the new runner: it finds the
	// wait recorded and goes on waiting.
	td.h.Eventually("new runner waiting too", func() bool {
		return metric(t, td.h, "vmglue_worker_teardown_waits_total", "", "") >= waits+3
	})
	if got := td.second.observe(&vm); len(got) != 2 {
		t.Fatalf("second removed %v after its restart while first drains", got)
	}
	if w := td.h.Record(&vm).Waiting; w == nil || !w.Since.Equal(since) {
		t.Fatalf("recorded wait after restart %+v, want since %s", w, since)
	}
	td.drained.Store(true)
	td.h.Eventually("second removed its objects", func() bool { return len(td.second.observe(&vm)) == 0 })
	td.checkFirstWentFirst(t)
}

// checkFirstWentFirst fails if second deleted while first still held
// objects of the VM.
func (td *teardown) checkFirstWentFirst(t *testing.T) {
	t.Helper()
	td.mu.Lock()
	defer td.mu.Unlock()
	if len(td.firstLeftAt) == 0 {
		t.Fatal("second never deleted")
	}
	for _, left := range td.firstLeftAt {
		if len(left) != 0 {
			t.Fatalf("second deleted while first still held %v", left)
		}
	}
}

// A converge waiting for the teardown order polls with reads alone: its
// lease (VMGLUE_LOCKS "second.<vm>") is neither taken nor released while
// the waits go on. (Before, each poll took and released the lease: two
// JetStream writes per waiting VM per TeardownPoll.)
func TestTeardownWaitPollsWithReads(t *testing.T) {
	td := newTeardown(t, nil)
	vm := testVM("1")
	td.boot(vm)
	kv, err := td.h.JS.KeyValue(context.Background(), eventbus.BucketLocks)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch, err := kv.Watch(ctx, "second."+vm.Key(), jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	var leaseOps atomic.Int64
	go func() {
		for e := range watch.Updates() {
			if e != nil {
				leaseOps.Add(1)
			}
		}
	}()
	td.h.Publish(deleted(vm))
	td.h.Eventually("second waiting, recorded", func() bool {
		rec := td.h.Record(&vm)
		return rec != nil && rec.Waiting != nil
	})
	// The converge that began the wait took the lease; its release may
	// still be on its way.
	td.h.Eventually("the lease of the converge that began the wait released", func() bool {
		e, err := kv.Get(context.Background(), "second."+vm.Key())
		return eventbus.IsNoKey(err) || (err == nil && e.Operation() != jetstream.KeyValuePut)
	})
	before := leaseOps.Load()
	waits := metric(t, td.h, "vmglue_worker_teardown_waits_total", "", "")
	td.h.Eventually("ten more polls", func() bool {
		return metric(t, td.h, "vmglue_worker_teardown_waits_total", "", "") >= waits+10
	})
	if n := leaseOps.Load() - before; n != 0 {
		t.Fatalf("%d lease writes during ten polls of a waiting converge, want 0", n)
	}
	if got := td.second.observe(&vm); len(got) != 2 {
		t.Fatalf("second removed %v while first drains", got)
	}
	td.drained.Store(true)
	td.h.Eventually("second removed its objects", func() bool { return len(td.second.observe(&vm)) == 0 })
	td.checkFirstWentFirst(t)
}

// A dependency that settles the VM in the same process wakes the waiting
// converge at once: with a poll of ten minutes, second removes its
// objects right after first has drained.
func TestTeardownWaitWokenByDependency(t *testing.T) {
	td := newTeardown(t, func(o *worker.Options) {
		o.TeardownPoll = 10 * time.Minute
		o.TeardownWait = 20 * time.Minute
	})
	vm := testVM("1")
	td.boot(vm)
	td.h.Publish(deleted(vm))
	td.h.Eventually("second waiting, recorded", func() bool {
		rec := td.h.Record(&vm)
		return rec != nil && rec.Waiting != nil
	})
	td.drained.Store(true)
	td.h.Eventually("second removed its objects, woken by first (the poll is 10 min)", func() bool {
		return len(td.second.observe(&vm)) == 0
	})
	td.checkFirstWentFirst(t)
}
