package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/vmglue/vmglue/eventbus"
)

// Objects is the state of one worker's target for one VM: a set of objects
// keyed by a string that names the object in the target (for DNS
// "A vm1.cloud.test.", for HAProxy "lb1/web/one-42"), each with a value that
// describes it ("10.0.0.42", "10.0.0.42:8080 weight 10"). Two equal values
// mean the object needs no change. Compare and copy with maps.Equal and
// maps.Clone (which keeps a nil map nil).
type Objects map[string]string

// Change is one step of a Plan.
type Change struct {
	Key string
	Old string // empty for a create
	New string // empty for a delete
}

// Plan is the difference between what a worker applied and what it wants.
type Plan struct {
	Create []Change
	Update []Change
	Delete []Change
}

// Empty reports whether the plan changes nothing.
func (p Plan) Empty() bool { return len(p.Create)+len(p.Update)+len(p.Delete) == 0 }

// Target is one kind of side effect (DNS, HAProxy, Puppet, monitoring). The
// runtime calls it for one VM at a time: never twice concurrently for the
// same VM, concurrently for different VMs.
type Target interface {
	// Name is the worker's name ("dns", "lb", "puppet"); it names the
	// durable consumer, the registry keys and the metrics.
	Name() string

	// Desired returns the objects the target should hold for the VM's newest
	// snapshot. A deleted VM normally wants none. An error wrapped with
	// Permanent (an invalid name, a bad per-VM setting) dead-letters the event.
	Desired(vm *eventbus.VM) (Objects, error)

	// Apply changes the target from req.Have to req.Want for req.VM and
	// returns what is in place afterwards. See Request for the contract.
	Apply(ctx context.Context, req Request) (Objects, error)
}

// Request is the input of one Target.Apply. The conformance suite
// (internal/worker/workertest) checks every rule below.
//
//   - Have is what this worker applied before for the VM: these objects are
//     ours. An object present in the target but absent from Have is
//     foreign: Apply must not change it and returns a Permanent ErrConflict
//     unless the target's policy adopts it.
//   - Have is ownership, not proof of existence: after an Apply that never
//     returned (a crash) or failed, it also holds the objects that Apply was
//     about to create, which may or may not exist. So Apply makes every
//     object of Want exist with its value (create, or verify and fix), even
//     when Have already lists it, and deletes the objects of Have that Want
//     lacks (a missing one is not an error).
//   - Unverified names the objects of Have that may not exist (pending from
//     an earlier Apply that failed or never returned), so a target applying
//     only Diff(Have, Want) knows what else to create. It is empty in the
//     normal case.
//   - On error the returned Objects still describe what is in place, so that
//     a partial success is recorded and not redone. An unverified object
//     returned unchanged by a failed Apply is not taken as proof that it
//     exists.
//   - Errors: Permanent → dead letter, Requeue → try again after a delay
//     without counting as a failure, anything else → transient, retried
//     with backoff. A cancelled context must fail the Apply (the event is
//     redelivered).
//   - ctx ends with the VM's lease: its Deadline is the lease's validity
//     (it moves forward while the lease is renewed). A call that changes
//     the target must not be made once ctx is done or past its Deadline,
//     also when it is sent from another goroutine (a batch): another
//     instance may hold the VM by then.
//
// Apply owns none of the maps: it must not modify them; Result gives a copy
// of Have to build the answer from.
type Request struct {
	VM         *eventbus.VM
	Have       Objects
	Want       Objects
	Unverified Objects
}

// Result returns a copy of Have (never nil): the starting point of what an
// Apply returns.
func (r Request) Result() Objects {
	if r.Have == nil {
		return Objects{}
	}
	return maps.Clone(r.Have)
}

// ErrConflict is wrapped by targets when an object that vmglue does not own
// is in the way.
var ErrConflict = errors.New("conflict with an object vmglue does not own")

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: retrying will not help, the event goes to
// the dead-letter stream with this error as the reason.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err (or an error it wraps) is permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// RequeueError asks the runtime to converge the VM again after a delay, for
// work that is in progress (an HAProxy server draining). It is not a failure.
type RequeueError struct {
	After  time.Duration
	Reason string
	// wait is set when the runtime itself requeues for the teardown
	// order (Runner.ordered): the parked event then polls with reads.
	wait *orderWait
}

func (e *RequeueError) Error() string { return fmt.Sprintf("requeue in %s: %s", e.After, e.Reason) }

// Requeue returns a RequeueError.
func Requeue(after time.Duration, reason string) error {
	return &RequeueError{After: after, Reason: reason}
}
