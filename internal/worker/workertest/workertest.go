// Package workertest is the conformance suite every worker Target passes:
// it runs the Target on the real worker runtime and a real embedded
// nats-server, publishes events like a source would, and checks what is
// really in the target afterwards.
//
// A target package uses it from a test:
//
//	func TestConformance(t *testing.T) {
//		workertest.Run(t, workertest.Fixture{New: ..., VM: ..., Change: ..., Observe: ..., PlantForeign: ...})
//	}
package workertest

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// Fixture is what the suite needs from a Target under test. Every field is
// required, except Options, and PlantForeign when NoForeign says why it
// cannot apply.
type Fixture struct {
	// New returns a fresh Target for one case, connected to the real
	// service the test harness started; tear it down with t.Cleanup.
	New func(t *testing.T) worker.Target
	// VM returns a running snapshot of a VM with the given id (letters and
	// digits) whose desired objects are not empty. The suite derives the
	// other snapshots from it: deleted, changed, observed again.
	VM func(t *testing.T, id string) eventbus.VM
	// Change alters a snapshot so that its desired objects differ, e.g. by
	// setting a user attribute or a new IP.
	Change func(vm *eventbus.VM)
	// Observe returns what is really in the target under the names the VM's
	// objects would have, whoever created them, as Desired would write them.
	Observe func(t *testing.T, vm *eventbus.VM) worker.Objects
	// PlantForeign puts an object that vmglue does not own where one of the
	// VM's desired objects will go, and returns it as Observe would show it.
	PlantForeign func(t *testing.T, vm *eventbus.VM) worker.Objects
	// RemoveByHand, for a target that is a worker.Verifier, removes the
	// VM's objects from the target behind vmglue's back (an operator's
	// nsupdate, "del server"); the suite then checks that a replayed event
	// puts them back. Nil for a target whose objects vmglue does not
	// re-create (the puppet worker): the case is skipped.
	RemoveByHand func(t *testing.T, vm *eventbus.VM)
	// NoForeign opts out of the foreign-object case, for a target whose
	// model has no object of its own that can be "in the way" on create.
	// It is the reason, printed by the case's t.Skip: set it only with
	// PlantForeign nil, and say why in the target's README.
	NoForeign string
	// KeepOnChange is set by a target that keeps recorded, while the VM
	// lives, the objects a Change made undesired (the puppet worker never
	// revokes a renamed live VM's certificate: its agent still uses it).
	// The update case then wants them recorded beside the new ones. It is
	// the reason; say it in the target's README too.
	KeepOnChange string
	// Options of the runtime; zero means TestOptions.
	Options *worker.Options
}

// env is one case: a harness, the spied target and a fresh VM.
type env struct {
	*Harness
	f   Fixture
	t   *testing.T
	spy *Spy
	vm  eventbus.VM
}

func (f Fixture) setup(t *testing.T) *env {
	t.Helper()
	if f.New == nil || f.VM == nil || f.Change == nil || f.Observe == nil {
		t.Fatal("workertest: New, VM, Change and Observe of Fixture are required")
	}
	if (f.PlantForeign == nil) == (f.NoForeign == "") {
		t.Fatal("workertest: set exactly one of Fixture.PlantForeign and Fixture.NoForeign (the reason)")
	}
	target := f.New(t)
	spy := NewSpy(target)
	h := NewHarness(t, target.Name())
	opts := TestOptions()
	if f.Options != nil {
		opts = *f.Options
	}
	h.StartRunner(spy.runnable(), opts)
	vm := f.VM(t, fmt.Sprintf("wt%d", rand.IntN(1e9)))
	vm.Version.Seq = max(vm.Version.Seq, 1)
	return &env{Harness: h, f: f, t: t, spy: spy, vm: vm}
}

// Deleted returns the deleted snapshot that follows vm: newer, terminal and,
// like Nova's delete notification, without IPs.
func Deleted(vm eventbus.VM) eventbus.VM {
	vm.Kind = eventbus.KindDeleted
	vm.State, vm.LCMState = "DONE", ""
	vm.NICs = nil
	vm.Version.Seq++
	return vm
}

// Later returns vm observed again later, with the same content (RUNNING
// fires again after a migration).
func Later(vm eventbus.VM) eventbus.VM {
	vm.Version.Observed++
	return vm
}

// desired is what the target wants for a snapshot.
func (e *env) desired(vm eventbus.VM) worker.Objects {
	e.t.Helper()
	want, err := e.spy.Target.Desired(&vm)
	if err != nil {
		e.t.Fatalf("Desired(%s): %v", vm.Key(), err)
	}
	return want
}

// converged checks that the target and the registry hold exactly want.
func (e *env) converged(vm eventbus.VM, want worker.Objects) {
	e.t.Helper()
	e.convergedKeeping(vm, want, want)
}

// convergedKeeping is converged where the registry records applied, a
// superset of want (Fixture.KeepOnChange).
func (e *env) convergedKeeping(vm eventbus.VM, want, applied worker.Objects) {
	e.t.Helper()
	if got := e.f.Observe(e.t, &vm); !maps.Equal(got, want) {
		e.t.Fatalf("target holds %v, want %v", got, want)
	}
	want = applied
	rec := e.Record(&vm)
	if rec == nil && len(want) == 0 {
		return
	}
	if rec == nil || !maps.Equal(rec.Applied, want) || len(rec.Pending) > 0 {
		e.t.Fatalf("registry record %+v, want applied %v and nothing pending", rec, want)
	}
}

// Run runs every case of the suite, each in a t.Run with a fresh nats-server
// and a fresh Target. A case the fixture opted out of is skipped with the
// fixture's reason.
func Run(t *testing.T, f Fixture) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.foreign && f.NoForeign != "" {
				t.Skipf("opted out by the fixture (Fixture.NoForeign): %s", f.NoForeign)
			}
			c.run(f.setup(t))
		})
	}
}
