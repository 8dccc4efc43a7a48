package delivery

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/spool"
)

// Publisher is the delivery of a resident source: one long-lived NATS
// connection that reconnects for ever. Publish and PublishAll are safe for
// concurrent use; events are sent in the order they are called with,
// behind whatever the spool still holds. Run sends the spool when NATS is back.
type Publisher struct {
	o  Options
	nc *nats.Conn
	js jetstream.JetStream

	mu      sync.Mutex  // one publish or flush at a time: keeps the order
	pending atomic.Bool // the spool may hold events
	kick    chan struct{}
}

// Open connects to NATS. It returns at once even when NATS is down: the
// connection then keeps trying, and events are spooled meanwhile. Call Run
// to send the spool when NATS answers, and Close at the end.
func Open(o Options) (*Publisher, error) {
	o.setDefaults()
	p := &Publisher{o: o, kick: make(chan struct{}, 1)}
	if es, err := spool.New(o.SpoolDir).List(); err != nil || len(es) > 0 {
		p.pending.Store(true)
	}
	co := o.Conn
	if co.Timeout == 0 {
		co.Timeout = o.Timeout
	}
	nc, err := eventbus.Connect(co, true)
	if err != nil {
		return nil, err
	}
	// An ack that never comes frees its place in the ack window after
	// the publish's timeout (PublishAll has spooled the event by then).
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(o.Timeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	p.nc, p.js = nc, js
	nc.SetDisconnectErrHandler(func(_ *nats.Conn, err error) {
		o.Log.Warn().AnErr("error", err).Msg("nats disconnected: events are spooled")
	})
	nc.SetReconnectHandler(func(c *nats.Conn) {
		o.Log.Info().Str("server", eventbus.RedactURL(c.ConnectedUrlRedacted())).Msg("nats connected")
		p.wake()
	})
	return p, nil
}

// Close closes the connection. Spooled events stay on disk.
func (p *Publisher) Close() { p.nc.Close() }

// Connected reports whether the connection is up now.
func (p *Publisher) Connected() bool { return p.nc.IsConnected() }

// Publish delivers one event: published (or duplicate) after its ack within
// Options.Timeout, or spooled when NATS cannot take it (not connected,
// timeout, no stream, ctx cancelled), or lost when the spool cannot take it
// either. While older events wait in the spool, they are sent first; when
// that fails ev is spooled behind them.
func (p *Publisher) Publish(ctx context.Context, ev *eventbus.Event) Result {
	return p.PublishAll(ctx, []*eventbus.Event{ev})[0]
}

// PublishAll delivers evs as Publish delivers each, in their order, with
// one ack window: all are sent, then their acks awaited together (within
// Options.Timeout), instead of one round trip per event. A source that
// has several events at hand (a burst) sends them at the speed of the
// connection, not of its round trip. An event whose ack does not come is
// spooled, so an event after it may be stored first: the workers order a
// VM's snapshots by their version, not by their arrival.
func (p *Publisher) PublishAll(ctx context.Context, evs []*eventbus.Event) []Result {
	out := make([]Result, len(evs))
	p.mu.Lock()
	defer p.mu.Unlock()
	keepAll := func(err error) []Result {
		for i, ev := range evs {
			out[i] = p.keep(ev, err)
		}
		return out
	}
	if !p.nc.IsConnected() {
		return keepAll(ErrNotConnected)
	}
	if p.pending.Load() {
		// Only what is still spooled holds evs back: a file quarantined by
		// this flush does not.
		if _, err := p.flushLocked(ctx); err != nil && p.pending.Load() {
			return keepAll(err)
		} else if err != nil {
			p.o.Log.Warn().Err(err).Msg("spool flushed with problems")
		}
	}
	if err := ctx.Err(); err != nil {
		// Shutting down: spooled, not sent (a send now would only come
		// back from the spool as a duplicate).
		return keepAll(err)
	}
	pctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
	defer cancel()
	acks := make([]jetstream.PubAckFuture, len(evs))
	for i, ev := range evs {
		f, err := eventbus.PublishAsync(p.js, ev)
		if err != nil {
			out[i] = Result{Err: err}
			continue
		}
		acks[i] = f
	}
	for i, f := range acks {
		if f != nil {
			out[i] = result(eventbus.AwaitAck(pctx, f, evs[i].ID))
		}
	}
	for i, r := range out {
		if r.Err != nil {
			out[i] = p.keep(evs[i], r.Err)
		}
	}
	return out
}

// Flush sends what the spool holds, oldest first, and returns how many.
func (p *Publisher) Flush(ctx context.Context) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flushLocked(ctx)
}

// Run sends the spool whenever it holds events and NATS is connected: every
// Options.FlushInterval and at once after a reconnect. It returns nil when
// ctx is cancelled.
func (p *Publisher) Run(ctx context.Context) error {
	t := time.NewTicker(p.o.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-p.kick:
		}
		if !p.pending.Load() || !p.nc.IsConnected() {
			continue
		}
		n, err := p.Flush(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			p.o.Log.Warn().Err(err).Int("sent", n).Msg("spool not yet sent")
		case n > 0:
			p.o.Log.Info().Int("sent", n).Msg("spool sent")
		}
	}
}

func (p *Publisher) flushLocked(ctx context.Context) (int, error) {
	n, err := flush(ctx, p.js, p.o.SpoolDir, p.o.Timeout)
	// Empty now, unless the flush stopped, or another process holds the
	// spool's lock.
	es, lerr := spool.New(p.o.SpoolDir).List()
	p.pending.Store(lerr != nil || len(es) > 0)
	return n, err
}

func (p *Publisher) keep(ev *eventbus.Event, cause error) Result {
	r := Keep(p.o.SpoolDir, ev, cause)
	if r.Outcome == Spooled {
		p.pending.Store(true)
		p.wake()
	}
	return r
}

func (p *Publisher) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}
