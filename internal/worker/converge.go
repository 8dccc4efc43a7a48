package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
)

// errPanic marks an Apply or Desired that panicked.
var errPanic = errors.New("target panicked")

// handle converges the VM of one event and settles the message.
func (r *Runner) handle(j *job) {
	meta, err := r.msgOf(j).Metadata()
	if err != nil {
		r.log.Error().Err(err).Msg("message metadata")
		return
	}
	n := meta.NumDelivered
	log := r.log.With().Str("cloud", j.ev.Data.Cloud).Str("vm", j.ev.Data.ID).
		Str("event_id", j.ev.ID).Uint64("delivery", n).Logger()
	if n > uint64(r.opts.MaxDeliver) {
		// Redelivered after AckWait without a verdict, more often than
		// allowed: the worker probably dies converging this event.
		r.deadLetter(j, ReasonMaxDeliveries, fmt.Errorf("delivered %d times without a result", n), log)
		return
	}
	if j.wait != nil {
		if d := r.stillWaiting(j); d > 0 {
			r.m.orderWaits.Inc()
			log.Debug().Dur("after", d).Msg("still waiting for the teardown order")
			r.park(j, d, j.wait)
			return
		}
	}
	r.m.inFlight.Inc()
	start := time.Now()
	res, err := r.converge(j, log)
	r.m.inFlight.Dec()
	r.m.converge.Observe(time.Since(start).Seconds())
	r.settle(j, n, res, err, log)
}

// settle maps the outcome of a converge to JetStream, once: ack on success,
// park on requeue or a busy lease, nak with backoff on a transient failure,
// dead letter and term on a permanent one or after MaxDeliver failures.
func (r *Runner) settle(j *job, n uint64, res string, err error, log zerolog.Logger) {
	var rq *RequeueError
	switch {
	case err == nil:
		_ = r.release(j, jetstream.Msg.Ack)
		r.m.events.WithLabelValues(res).Inc()
		log.Debug().Str("result", res).Msg("converged")
		for _, w := range r.waiters {
			w.wake(j.key)
		}
	case errors.Is(err, ErrLeaseHeld):
		log.Debug().Err(err).Msg("vm busy in another instance, waiting")
		r.park(j, r.opts.LockRetry, nil)
	case errors.As(err, &rq):
		r.m.events.WithLabelValues(ResultRequeue).Inc()
		log.Debug().Dur("after", rq.After).Str("reason", rq.Reason).Msg("requeue")
		r.park(j, rq.After, rq.wait)
	case r.workCtx.Err() != nil:
		log.Info().Err(err).Msg("converge cut by shutdown, left for redelivery")
		_ = r.release(j, jetstream.Msg.Nak)
	case IsPermanent(err):
		reason := ReasonPermanent
		switch {
		case errors.Is(err, ErrConflict):
			reason = ReasonConflict
		case errors.Is(err, ErrDriftKept):
			reason = ReasonDrift
		}
		r.deadLetter(j, reason, err, log)
	case n >= uint64(r.opts.MaxDeliver):
		r.deadLetter(j, ReasonMaxDeliveries, err, log)
	default:
		d := r.opts.Backoff.Delay(int(n))
		r.m.events.WithLabelValues(ResultRetry).Inc()
		r.m.retries.Inc()
		log.Warn().Err(err).Dur("retry_in", d).Msg("converge failed, will retry")
		_ = r.release(j, func(m jetstream.Msg) error { return m.NakWithDelay(d) })
	}
}

// deadLetter sends j's message to the dead-letter stream and terminates it.
// If the dead-letter stream cannot take it, the event is retried instead:
// it is never dropped.
func (r *Runner) deadLetter(j *job, reason string, cause error, log zerolog.Logger) {
	ctx, cancel := bookkeeping(context.Background())
	defer cancel()
	msg := r.msgOf(j)
	if err := deadLetter(ctx, r.js, r.name, reason, cause, msg); err != nil {
		log.Error().Err(err).Msg("dead-letter failed, will retry the event")
		r.m.events.WithLabelValues(ResultRetry).Inc()
		r.m.retries.Inc()
		_ = r.release(j, func(m jetstream.Msg) error { return m.NakWithDelay(r.opts.Backoff.Delay(1)) })
		return
	}
	_ = r.release(j, func(m jetstream.Msg) error { return m.TermWithReason(reason) })
	r.m.events.WithLabelValues(ResultDeadLetter).Inc()
	r.m.deadLetters.Inc()
	log.Error().Err(cause).Str("reason", reason).Msg("event dead-lettered")
}

// converge brings the target to the desired state of the VM's newest
// snapshot, under the VM's lease, and records what is applied.
func (r *Runner) converge(j *job, log zerolog.Logger) (string, error) {
	r.resyncMu.RLock()
	defer r.resyncMu.RUnlock()
	ctx, cancel := context.WithCancelCause(r.workCtx)
	defer cancel(nil)
	ls, err := r.leases.acquire(ctx, j.key)
	if err != nil {
		return "", err
	}
	defer func() {
		bctx, bcancel := bookkeeping(ctx)
		defer bcancel()
		if err := ls.release(bctx); err != nil {
			log.Warn().Err(err).Msg("release lease")
		}
	}()
	// Renewals stop before the release (deferred calls run last first).
	defer ls.keepAfter(ctx, func(err error) { cancel(fmt.Errorf("lost lease: %w", err)) })()
	ctx = leaseContext{Context: ctx, ls: ls}

	// ctx (a leaseContext) reports the lease's validity as its deadline
	// but is done only when the lease is lost: each NATS request under it
	// gets a timer of its own (bounded).
	rctx, rcancel := bounded(ctx, requestTimeout)
	newest, first, err := r.snaps.merge(rctx, &j.ev.Data)
	rcancel()
	if err != nil {
		return "", err
	}
	want, err := r.desired(newest)
	if err != nil {
		return "", err
	}
	var (
		rec *Record
		rev uint64
	)
	// A VM whose first snapshot this converge stored has no record (the
	// registry's records go before the snapshots: Compact), one JetStream
	// round trip less per new VM. The pending write that follows creates
	// the record only if there is none, so a record there after all (an
	// operator removed the snapshot) fails it and the retry reads it.
	if !first || len(want) == 0 || j.verify {
		rctx, rcancel = bounded(ctx, requestTimeout)
		rec, rev, err = r.reg.Get(rctx, j.key)
		rcancel()
		if err != nil {
			return "", err
		}
	}
	have := rec.Have()
	var drifted Objects // objects of have a Verify found missing or wrong
	var kept error      // objects changed by hand that the target leaves so
	if j.verify {
		fs, err := r.verify(ctx, newest, have, want, log)
		if err != nil {
			return "", err
		}
		drifted, kept = repairs(have, fs), keptError(fs)
	}
	if (rec == nil || len(rec.Pending) == 0) && len(drifted) == 0 && maps.Equal(have, want) {
		if rec != nil && (rec.Error != "" || rec.Waiting != nil) { // converged meanwhile: clear the old error or wait
			rctx, rcancel = bounded(ctx, requestTimeout)
			_, err = r.reg.put(rctx, j.key, &Record{Applied: have, EventID: j.ev.ID, Updated: now()}, rev)
			rcancel()
		}
		if err == nil {
			err = kept
		}
		return ResultNoop, err
	}
	if e := log.Debug(); e.Enabled() {
		p := Diff(have, want)
		e.Int("create", len(p.Create)).Int("update", len(p.Update)).Int("delete", len(p.Delete)).
			Int("pending", pendingLen(rec)).Msg("plan")
	}
	// Record the intent before any side effect: after a crash the pending
	// objects are known to be possibly ours. Objects still unverified from
	// an earlier crash stay pending until an Apply returns.
	// Another worker may have to finish with the VM first (Runner.After).
	octx, ocancel := bounded(ctx, requestTimeout)
	rec, rev, err = r.ordered(octx, j.key, newest, rec, rev, log)
	ocancel()
	if err != nil {
		return "", err
	}
	unverified := rec.unverified()
	if len(drifted) > 0 {
		if unverified == nil {
			unverified = Objects{}
		}
		maps.Copy(unverified, drifted)
	}
	before := &Record{Applied: rec.applied(), Pending: Objects{}, EventID: j.ev.ID, Updated: now(),
		Waiting: rec.waitingFor(newest.Kind)}
	maps.Copy(before.Pending, unverified)
	maps.Copy(before.Pending, want) // a wanted value wins

	if !intentKnown(rec, before.Pending) {
		rctx, rcancel = bounded(ctx, requestTimeout)
		rev, err = r.reg.put(rctx, j.key, before, rev)
		rcancel()
		if err != nil {
			return "", err
		}
	}
	// No target call once the lease counts as lost: another instance may
	// hold it by now. What is pending stays so, as after a crash.
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("before apply: %w", cause(ctx))
	}
	got, aerr := r.apply(ctx, Request{VM: newest, Have: maps.Clone(have), Want: maps.Clone(want), Unverified: unverified})
	after := &Record{Applied: got, EventID: j.ev.ID, Updated: now(), Waiting: before.Waiting}
	switch {
	case errors.Is(aerr, errPanic):
		// Unknown what happened: like a crash, keep the intent.
		after.Applied, after.Pending = before.Applied, before.Pending
	case aerr == nil:
		if got == nil {
			after.Applied = Objects{}
		}
	default:
		if got == nil { // nothing reported: what was applied stays so
			got = rec.applied()
		}
		// A failure that is not Permanent may hide a change that happened
		// (an UPDATE that reached the server before its answer was lost;
		// a Requeue beside another instance's failure): what Apply does
		// not confirm stays pending, ours but unverified, so a later
		// converge (a delete) still cleans it up instead of leaking it.
		// A Permanent one refused before changing anything, but what an
		// earlier interrupted Apply left unverified stays so.
		intents := before.Pending
		if IsPermanent(aerr) {
			// The target decided: what it still reports of the unverified
			// objects stays unknown; what it dropped is not ours.
			intents = Objects{}
			for k, v := range unverified {
				if got[k] == v {
					intents[k] = v
				}
			}
		}
		after.Applied, after.Pending = settle(rec, unverified, intents, want, got)
	}
	if aerr != nil {
		after.Error = aerr.Error()
	} else {
		after.Waiting = nil // the wait is over: done
	}
	bctx, bcancel := bookkeeping(ctx)
	defer bcancel()
	if _, err := r.reg.put(bctx, j.key, after, rev); err != nil {
		if aerr != nil {
			log.Error().Err(err).Msg("record applied objects")
			return "", aerr
		}
		return "", err
	}
	if aerr != nil {
		return "", aerr
	}
	if len(drifted) > 0 {
		r.m.driftRepaired.Add(float64(len(drifted)))
		log.Info().Int("objects", len(drifted)).Msg("drift repaired")
	}
	if kept != nil {
		return "", kept
	}
	return ResultOK, nil
}

// settle splits what a failed Apply returned (got) into what is applied
// and what stays pending, of the intents in pending. An intent is settled
// when got holds its value, or when got lacks it and want does too (it was
// to go, and went), except an object that was unverified on the way in
// and comes back unchanged: a failed Apply echoes its have, and an echo
// proves nothing. Such an object stays pending, and the applied side keeps
// only what the record held as applied before (rec), so that the next
// converge still sees it as unverified and makes it exist.
func settle(rec *Record, unverified, pending, want, got Objects) (applied, still Objects) {
	applied = Objects{}
	maps.Copy(applied, got)
	before := rec.applied()
	for k, v := range pending {
		g, ok := got[k]
		if ok && g == v && unverified[k] != v {
			continue // confirmed
		}
		if _, wanted := want[k]; !ok && !wanted {
			continue // removed, as wanted
		}
		if still == nil {
			still = Objects{}
		}
		still[k] = v
		if ok && g == unverified[k] {
			if old, was := before[k]; was {
				applied[k] = old
			} else {
				delete(applied, k)
			}
		}
	}
	return applied, still
}

// intentKnown reports whether the record already says all that the
// pending write before an Apply would: nothing pending in it, and every
// pending object applied with the same value (a plan that only deletes, or
// keeps). A crash during such an Apply leaves the record saying that the
// objects it was deleting are ours, which they were: the next converge
// deletes them again (a delete of a missing object is no error), so the
// write is skipped, one JetStream round trip less per delete.
func intentKnown(rec *Record, pending Objects) bool {
	if rec == nil || len(rec.Pending) > 0 {
		return false
	}
	for k, v := range pending {
		if old, ok := rec.Applied[k]; !ok || old != v {
			return false
		}
	}
	return true
}

func pendingLen(rec *Record) int {
	if rec == nil {
		return 0
	}
	return len(rec.Pending)
}

// desired calls Target.Desired, turning a panic into a permanent error: it is
// a pure function of the snapshot, a retry would panic again.
func (r *Runner) desired(vm *eventbus.VM) (want Objects, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error().Str("stack", string(debug.Stack())).Msg("desired panicked")
			want, err = nil, Permanent(fmt.Errorf("desired: %w: %v", errPanic, p))
		}
	}()
	want, err = r.t.Desired(vm)
	if err != nil {
		return nil, fmt.Errorf("desired: %w", err)
	}
	if want == nil {
		want = Objects{}
	}
	return want, nil
}

// apply calls Target.Apply, turning a panic into a transient error that
// keeps the registry's pending objects, as a crash would.
func (r *Runner) apply(ctx context.Context, req Request) (got Objects, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error().Str("stack", string(debug.Stack())).Msg("apply panicked")
			got, err = nil, fmt.Errorf("apply: %w: %v", errPanic, p)
		}
	}()
	got, err = r.t.Apply(ctx, req)
	if err != nil {
		err = fmt.Errorf("apply: %w", err)
	}
	return got, err
}

func now() time.Time { return time.Now().UTC() }

// cause is why ctx is done: the lease lost, shutdown, or the lease's
// validity passed before keep noticed.
func cause(ctx context.Context) error {
	if c := context.Cause(ctx); c != nil {
		return c
	}
	return fmt.Errorf("lost lease: %w", ctx.Err())
}
