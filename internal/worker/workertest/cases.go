package workertest

import (
	"context"
	"maps"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// cases of the suite, run in this order.
var cases = []struct {
	name    string
	run     func(e *env)
	foreign bool // needs Fixture.PlantForeign (see Fixture.NoForeign)
}{
	{name: "create then converge again changes nothing", run: convergeTwice},
	{name: "update applies the new desired state", run: update},
	{name: "delete removes what was created", run: createDelete},
	{name: "delete of a VM never seen is a no-op", run: deleteUnknown},
	{name: "deleted before running leaves nothing behind", run: outOfOrder},
	{name: "replayed event changes nothing", run: replay},
	{name: "replayed event repairs objects removed by hand", run: repairByReplay},
	{name: "foreign object is a conflict and left alone", run: foreign, foreign: true},
	{name: "context cancelled mid-apply converges on redelivery", run: cancelled},
	{name: "crash before apply converges on redelivery", run: crashBefore},
	{name: "crash after apply converges on redelivery", run: crashAfter},
	{name: "crash after a delete's apply converges on redelivery", run: crashAfterDelete},
	{name: "delete after an apply whose answer was lost leaves nothing behind", run: lostAnswer},
	{name: "target down for several deliveries converges when back", run: downTwice},
}

func convergeTwice(e *env) {
	e.Publish(e.vm)
	e.WaitIdle()
	want := e.desired(e.vm)
	e.converged(e.vm, want)
	if n := len(e.spy.Changes()); n != 1 {
		e.t.Fatalf("%d changing Apply calls for the first event, want 1", n)
	}
	e.Publish(Later(e.vm))
	e.WaitIdle()
	if n := len(e.spy.Changes()); n != 1 {
		e.t.Fatalf("second event with the same desired state changed the target: %+v", e.spy.Changes())
	}
	e.converged(e.vm, want)
}

func update(e *env) {
	e.Publish(e.vm)
	e.WaitIdle()
	v2 := e.vm
	v2.Attributes = cloneMap(e.vm.Attributes)
	v2.NICs = append([]eventbus.NIC(nil), e.vm.NICs...)
	e.f.Change(&v2)
	v2.Version.Seq++
	if maps.Equal(e.desired(v2), e.desired(e.vm)) {
		e.t.Fatal("Fixture.Change did not change the desired objects")
	}
	e.Publish(v2)
	e.WaitIdle()
	applied := e.desired(v2)
	if e.f.KeepOnChange != "" {
		e.t.Logf("the old objects stay recorded (Fixture.KeepOnChange): %s", e.f.KeepOnChange)
		maps.Copy(applied, e.desired(e.vm))
	}
	e.convergedKeeping(v2, e.desired(v2), applied)
}

func createDelete(e *env) {
	e.Publish(e.vm)
	e.WaitIdle()
	e.converged(e.vm, e.desired(e.vm))
	e.Publish(Deleted(e.vm))
	e.WaitIdle()
	e.converged(e.vm, worker.Objects{})
}

func deleteUnknown(e *env) {
	e.Publish(Deleted(e.vm))
	e.WaitIdle()
	if c := e.spy.Changes(); len(c) != 0 {
		e.t.Fatalf("delete of an unknown VM applied %+v", c)
	}
	e.converged(e.vm, worker.Objects{})
}

func outOfOrder(e *env) {
	e.Publish(Deleted(e.vm))
	e.Publish(e.vm)
	e.WaitIdle()
	if c := e.spy.Changes(); len(c) != 0 {
		e.t.Fatalf("an older running event revived a deleted VM: %+v", c)
	}
	e.converged(e.vm, worker.Objects{})
}

func replay(e *env) {
	ev := e.Publish(e.vm)
	e.WaitIdle()
	before := len(e.spy.Changes())
	e.Replay(ev)
	e.Replay(ev)
	e.WaitIdle()
	if after := len(e.spy.Changes()); after != before {
		e.t.Fatalf("replay changed the target: %+v", e.spy.Changes()[before:])
	}
	e.converged(e.vm, e.desired(e.vm))
}

// repairByReplay: a verifying target reads back a converged VM without
// drift; objects removed by hand come back with a replayed event.
func repairByReplay(e *env) {
	v, ok := e.spy.Target.(worker.Verifier)
	if !ok || e.f.RemoveByHand == nil {
		e.t.Skip("the target cannot verify, or Fixture.RemoveByHand is nil: it re-creates nothing")
	}
	ev := e.Publish(e.vm)
	e.WaitIdle()
	want := e.desired(e.vm)
	e.converged(e.vm, want)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rb, err := v.Verify(ctx, worker.Request{VM: &e.vm, Have: e.Record(&e.vm).Applied, Want: want})
	if err != nil {
		e.t.Fatalf("Verify of a converged VM: %v", err)
	}
	if fs := worker.Compare(want, rb); len(fs) != 0 {
		e.t.Fatalf("Verify of a converged VM finds %v", fs)
	}
	e.f.RemoveByHand(e.t, &e.vm)
	if got := e.f.Observe(e.t, &e.vm); maps.Equal(got, want) {
		e.t.Fatal("Fixture.RemoveByHand removed nothing")
	}
	e.Replay(ev)
	e.WaitIdle()
	e.converged(e.vm, want)
}

func foreign(e *env) {
	planted := e.f.PlantForeign(e.t, &e.vm)
	if len(planted) == 0 {
		e.t.Fatal("Fixture.PlantForeign planted nothing")
	}
	e.Publish(e.vm)
	e.WaitIdle()
	dls := e.DeadLetters()
	if len(dls) != 1 || dls[0].Worker != e.Worker || dls[0].Reason != worker.ReasonConflict {
		e.t.Fatalf("dead letters %+v, want one of worker %s with reason %q", dls, e.Worker, worker.ReasonConflict)
	}
	e.untouched(planted)
	// Deleting the VM must not take the foreign object with it.
	e.Publish(Deleted(e.vm))
	e.WaitIdle()
	e.untouched(planted)
}

// untouched checks that planted objects are still there, unchanged and not
// claimed in the registry.
func (e *env) untouched(planted worker.Objects) {
	e.t.Helper()
	got := e.f.Observe(e.t, &e.vm)
	rec := e.Record(&e.vm)
	for k, v := range planted {
		if got[k] != v {
			e.t.Fatalf("foreign object %s is %q, want %q untouched", k, got[k], v)
		}
		if _, ok := rec.Have()[k]; ok {
			e.t.Fatalf("foreign object %s claimed in the registry: %+v", k, rec)
		}
	}
}

func cancelled(e *env) {
	e.spy.Inject(CancelContext)
	e.Publish(e.vm)
	e.WaitIdle()
	// The cancelled Apply must fail (a target that ignores its context
	// cannot be shut down in bounded time), and the redelivery converge.
	if n := len(e.spy.Calls()); n < 2 {
		e.t.Fatalf("%d Apply calls: the Apply with a cancelled context succeeded, want it to fail and be redelivered", n)
	}
	e.converged(e.vm, e.desired(e.vm))
}

func crashBefore(e *env) {
	e.spy.Inject(CrashBefore)
	e.Publish(e.vm)
	e.WaitIdle()
	calls := e.spy.Calls()
	want := e.desired(e.vm)
	if len(calls) < 2 || !maps.Equal(calls[1].Have, want) || !maps.Equal(calls[1].Unverified, want) {
		e.t.Fatalf("after the crash Apply got %+v, want the pending objects in have and unverified", calls)
	}
	e.converged(e.vm, e.desired(e.vm))
}

func crashAfter(e *env) {
	e.spy.Inject(CrashAfter)
	e.Publish(e.vm)
	e.WaitIdle()
	e.converged(e.vm, e.desired(e.vm))
	if dls := e.DeadLetters(); len(dls) != 0 {
		e.t.Fatalf("objects created before the crash were taken for foreign: %+v", dls)
	}
}

// crashAfterDelete: the Apply of a delete removes the objects and the
// worker crashes before it records that: the registry still claims them
// (the runtime writes no pending intent for a plan that only deletes), so
// the redelivery deletes them again, which must not fail.
func crashAfterDelete(e *env) {
	e.Publish(e.vm)
	e.WaitIdle()
	e.converged(e.vm, e.desired(e.vm))
	e.spy.Inject(CrashAfter)
	gone := Deleted(e.vm)
	e.Publish(gone)
	e.WaitIdle()
	if n := len(e.spy.Calls()); n < 3 {
		e.t.Fatalf("%d Apply calls, want the create, the crashed delete and its redelivery", n)
	}
	e.converged(gone, worker.Objects{})
	if dls := e.DeadLetters(); len(dls) != 0 {
		e.t.Fatalf("the repeated delete failed: %+v", dls)
	}
}

// lostAnswer: the first Apply changes the target but reports a transient
// failure and nothing done; the VM's delete, queued behind it, must still
// remove what that Apply created (it is pending, ours but unverified).
func lostAnswer(e *env) {
	e.spy.Inject(LostAnswer)
	e.Publish(e.vm)
	e.Publish(Deleted(e.vm))
	e.WaitIdle()
	if n := len(e.spy.Calls()); n < 2 {
		e.t.Fatalf("%d Apply calls, want the lost one and the delete", n)
	}
	e.converged(e.vm, worker.Objects{})
	if dls := e.DeadLetters(); len(dls) != 0 {
		e.t.Fatalf("objects of the lost answer were taken for foreign: %+v", dls)
	}
}

// downTwice: the target is down for the first two deliveries (each Apply
// reports have unchanged, with the objects of the first attempt pending in
// it the second time); the third creates everything. A failed Apply's echo
// of its have must not be taken for proof that the objects exist.
func downTwice(e *env) {
	e.spy.Inject(Down, Down)
	e.Publish(e.vm)
	e.WaitIdle()
	if n := len(e.spy.Calls()); n < 3 {
		e.t.Fatalf("%d Apply calls, want two failures and the converge", n)
	}
	e.converged(e.vm, e.desired(e.vm))
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
