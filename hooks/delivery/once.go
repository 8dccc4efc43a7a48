package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
)

// Report is what a one-shot run did.
type Report struct {
	// Result is the delivery of the run's event (zero Outcome without one;
	// Err is then why the run could not connect).
	Result
	// Flushed counts the spooled events sent before the run's own.
	Flushed int
	// FlushErr says why the spool could not be emptied (not fatal: the
	// event itself is still published). ErrFlushTimeUp when its share of
	// the budget ran out.
	FlushErr error
}

// Once delivers ev from a one-shot process: connect (no reconnects), send
// what is spooled, publish ev and wait for its ack, all within o.Timeout
// (and ctx). It returns as soon as ctx is cancelled, even in the middle of a
// connect. When ev is not published it is spooled (Spooled), or Lost when
// the spool cannot take it. With a nil ev it only sends the spool: Err then
// says why it could not connect.
//
// A long backlog may use half of the budget, so that ev still has time for
// its own publish; ev is published even when the flush failed (one stuck
// spool file must not hold back every new event: consumers order snapshots
// by version).
func Once(ctx context.Context, o Options, ev *eventbus.Event) Report {
	o.setDefaults()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	ch := make(chan Report, 1)
	go func() { ch <- once(ctx, &o, ev) }()
	var r Report
	select {
	case r = <-ch:
	case <-ctx.Done():
		select {
		case r = <-ch: // the ack won the race
		default:
			r = Report{Result: Result{Err: ctx.Err()}}
		}
	}
	if ev != nil && r.Outcome == 0 {
		r.Result = Keep(o.SpoolDir, ev, r.Err)
	}
	return r
}

// once is the NATS part of Once.
func once(ctx context.Context, o *Options, ev *eventbus.Event) Report {
	co := o.Conn
	co.Timeout = time.Until(deadline(ctx, o.Timeout))
	nc, err := eventbus.Connect(co, false)
	if err != nil {
		return Report{Result: Result{Err: err}}
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return Report{Result: Result{Err: fmt.Errorf("jetstream: %w", err)}}
	}
	var r Report
	budget := time.Until(deadline(ctx, o.Timeout))
	if ev != nil {
		budget /= 2
	}
	fctx, fcancel := context.WithTimeout(ctx, budget)
	r.Flushed, r.FlushErr = flush(fctx, js, o.SpoolDir, 0)
	fcancel()
	if ctx.Err() == nil && errors.Is(r.FlushErr, context.DeadlineExceeded) {
		r.FlushErr = ErrFlushTimeUp
	}
	if ev != nil {
		r.Result = send(ctx, js, ev)
	}
	return r
}

// deadline is ctx's deadline, or now + d without one.
func deadline(ctx context.Context, d time.Duration) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(d)
}
