package worker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
)

// Ordered teardown: a worker may have to wait, for some kinds of snapshot,
// until other workers have finished with the VM (the dns worker removes a
// deleted VM's name only once the lb worker has drained it). "Finished" is
// read from the other worker's registry record, never from memory, so the
// order holds across a crash or restart of serve and between serve
// processes:
//
//	a dependency has settled a VM when its record holds no pending objects
//	and its applied objects are what its Target.Desired wants for the
//	VM's newest snapshot (none, for a deleted VM).
//
// A converge whose plan is not empty and whose dependencies have not all
// settled does not apply anything: it records when it began to wait
// (Record.Waiting, in its own registry record) and asks to be converged
// again after Options.TeardownPoll, like a Requeue: the lease and the
// dispatcher slot are released meanwhile, other VMs go on. While it
// waits, its event polls with reads alone (the newest snapshot and the
// dependencies' records: no lease, no write), and a converge of a
// dependency in this process wakes it at once. Once
// Options.TeardownWait has passed since the recorded start, it goes on
// anyway, counts vmglue_worker_teardown_timeouts_total{worker,after} and
// logs one warning naming the VM and the workers it waited for (down, not
// configured in this process's peers, or dead-lettered).

// Waiting is what a worker's record says of an ordered converge that found
// its dependencies unsettled: since when it waits, for which snapshot kind.
type Waiting struct {
	Kind  string    `json:"kind"`
	Since time.Time `json:"since"`
	// For names the workers unsettled when the wait began.
	For []string `json:"for"`
}

// After declares that, for snapshots of kind, the Runner converges a VM
// only once every one of deps has settled it (see the ordered teardown
// above), or Options.TeardownWait has passed. Call it before Run; deps
// are Runners of the same process, used only to read their registries and
// Desired. A Runner given as its own dependency is ignored.
func (r *Runner) After(kind string, deps ...*Runner) {
	if r.after == nil {
		r.after = map[string][]*Runner{}
	}
	for _, d := range deps {
		if d != r && !slices.Contains(r.after[kind], d) {
			r.after[kind] = append(r.after[kind], d)
			if !slices.Contains(d.waiters, r) {
				d.waiters = append(d.waiters, r)
			}
			r.m.orderTimeouts.WithLabelValues(d.name) // shown from the start, at 0
		}
	}
}

// settled reports whether dep has settled the VM vm (key vmKey).
func settled(ctx context.Context, dep *Runner, vmKey string, vm *eventbus.VM) (bool, error) {
	want, err := dep.desired(vm)
	if err != nil {
		return false, nil // its converge dead-letters: only the limit ends the wait
	}
	rec, _, err := dep.reg.Get(ctx, vmKey)
	if err != nil {
		return false, err
	}
	return pendingLen(rec) == 0 && maps.Equal(rec.Have(), want), nil
}

// unsettledOf names those of deps that have not settled the VM vm (key
// vmKey).
func unsettledOf(ctx context.Context, deps []*Runner, vmKey string, vm *eventbus.VM) ([]string, error) {
	var out []string
	for _, d := range deps {
		ok, err := settled(ctx, d, vmKey, vm)
		if err != nil {
			return nil, fmt.Errorf("read %s record for the teardown order: %w", d.name, err)
		}
		if !ok {
			out = append(out, d.name)
		}
	}
	return out, nil
}

// orderVerdict is what an ordered converge does now.
type orderVerdict struct {
	wait   time.Duration // > 0: requeue after it, apply nothing
	gaveUp bool          // the limit passed with unsettled dependencies
}

// decideOrder is the decision of an ordered converge: unsettled are the
// dependencies not yet settled, since when the wait began, limit
// Options.TeardownWait and poll Options.TeardownPoll.
func decideOrder(unsettled []string, since, now time.Time, limit, poll time.Duration) orderVerdict {
	if len(unsettled) == 0 {
		return orderVerdict{}
	}
	left := since.Add(limit).Sub(now)
	if left <= 0 {
		return orderVerdict{gaveUp: true}
	}
	return orderVerdict{wait: max(min(poll, left), time.Millisecond)}
}

// ordered is called by converge before any change for the VM: it returns
// a nil error when the converge may apply, or a RequeueError while a
// dependency of the snapshot's kind has not settled. rec and rev are the
// worker's record (nil if none) and its revision; a wait that begins is
// recorded in the record's Waiting, and the record and revision returned
// are then the new ones.
func (r *Runner) ordered(ctx context.Context, key string, vm *eventbus.VM, rec *Record, rev uint64, log zerolog.Logger) (*Record, uint64, error) {
	deps := r.after[vm.Kind]
	if len(deps) == 0 {
		return rec, rev, nil
	}
	unsettled, err := unsettledOf(ctx, deps, key, vm)
	if err != nil {
		return rec, rev, err
	}
	w := rec.waitingFor(vm.Kind)
	if len(unsettled) > 0 && w == nil {
		w = &Waiting{Kind: vm.Kind, Since: now(), For: unsettled}
		next := &Record{Applied: Objects{}}
		if rec != nil {
			c := *rec
			next = &c
		}
		next.Waiting, next.Updated = w, now()
		nrev, err := r.reg.put(ctx, key, next, rev)
		if err != nil {
			return rec, rev, err
		}
		rec, rev = next, nrev
		log.Info().Str("kind", vm.Kind).Strs("after", unsettled).Dur("limit", r.opts.TeardownWait).
			Msg("waiting for other workers to finish first")
	}
	since := time.Time{}
	if w != nil {
		since = w.Since
	}
	v := decideOrder(unsettled, since, now(), r.opts.TeardownWait, r.opts.TeardownPoll)
	switch {
	case v.gaveUp:
		for _, d := range unsettled {
			r.m.orderTimeouts.WithLabelValues(d).Inc()
		}
		log.Warn().Str("kind", vm.Kind).Strs("after", unsettled).Dur("waited", now().Sub(since).Round(time.Second)).
			Msg("teardown order: gave up waiting for " + strings.Join(unsettled, ", ") + ", going on")
	case v.wait > 0:
		r.m.orderWaits.Inc()
		return rec, rev, &RequeueError{After: v.wait, Reason: "waiting for " + strings.Join(unsettled, ", ") + " to finish first",
			wait: &orderWait{kind: vm.Kind, since: since}}
	}
	return rec, rev, nil
}

// orderWait is the teardown wait of a parked event: for which snapshot
// kind, since when (as recorded in the worker's record).
type orderWait struct {
	kind  string
	since time.Time
}

// stillWaiting is the poll of an event parked for the teardown order,
// with reads only: how long to park it again when the VM's newest
// snapshot is still of the kind it waits for, its dependencies have not
// settled it and the limit has not passed; 0 when the event must be
// converged (or on any error: the converge reads again and decides).
func (r *Runner) stillWaiting(j *job) time.Duration {
	w := j.wait
	ctx, cancel := bounded(r.workCtx, requestTimeout)
	defer cancel()
	vm, _, err := r.snaps.Get(ctx, j.key)
	if err != nil || vm == nil || vm.Kind != w.kind {
		return 0
	}
	unsettled, err := unsettledOf(ctx, r.after[w.kind], j.key, vm)
	if err != nil {
		return 0
	}
	return decideOrder(unsettled, w.since, now(), r.opts.TeardownWait, r.opts.TeardownPoll).wait
}

// wake queues at once the events of VM key parked for the teardown order:
// a dependency has just converged it.
func (r *Runner) wake(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return // drain naks what is held
	}
	for _, j := range r.held {
		if j.key == key && j.wait != nil && j.timer != nil && j.timer.Stop() {
			r.enqueueLocked(j)
		}
	}
}

// waitingFor returns the recorded wait of kind, nil if none.
func (r *Record) waitingFor(kind string) *Waiting {
	if r == nil || r.Waiting == nil || r.Waiting.Kind != kind {
		return nil
	}
	return r.Waiting
}
