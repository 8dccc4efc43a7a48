package listen

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/delivery"
)

// Publisher delivers events: hooks/delivery's resident Publisher.
type Publisher interface {
	// Publish returns once the event is stored, found a duplicate, spooled
	// or lost (Result.Outcome).
	Publish(ctx context.Context, ev *eventbus.Event) delivery.Result
	// PublishAll is Publish of each event, in order, with one ack window.
	PublishAll(ctx context.Context, evs []*eventbus.Event) []delivery.Result
}

// Sweeper compares the cloud's API with the known VMs and publishes what
// the stream did not say (internal/sweep for OpenNebula).
type Sweeper interface {
	// Sweep runs one sweep; an error means it concluded nothing.
	Sweep(ctx context.Context) error
}

// SweepFunc adapts a function to Sweeper.
type SweepFunc func(ctx context.Context) error

// Sweep implements Sweeper.
func (f SweepFunc) Sweep(ctx context.Context) error { return f(ctx) }

// Options are what Run needs.
type Options struct {
	// Config has its defaults set and is valid.
	Config    Config
	Publisher Publisher
	// Sweeper is called on start, after every reconnect and every
	// Config.SweepInterval; nil: no sweep (serve's periodic sweep alone
	// closes the gaps).
	Sweeper Sweeper
	// Secrets keeps the VMs' secrets off the bus: the same policy as the
	// hook's (secret names, challenge attribute and key), so that both
	// make the same event of one change.
	Secrets eventbus.Secrets
	// Metrics may be nil (private ones).
	Metrics *Metrics
	// Ready, when set, is called once, after the first subscription.
	Ready func()
	Log   zerolog.Logger
}

// Reconnect backoff bounds.
const (
	minBackoff  = 100 * time.Millisecond
	maxBackoff  = 5 * time.Second
	dialTimeout = 5 * time.Second
	// sweepDelay is how long after a connect its sweep starts. A ZeroMQ
	// subscription is not acknowledged: what oned publishes before it
	// arrives is dropped, so the sweep lists the cloud only once it has
	// surely arrived.
	sweepDelay = time.Second
	// queueSize is how many messages wait between the socket and the
	// publisher: a short NATS stall does not push back on oned (whose
	// send high-water mark would then drop messages).
	queueSize = 4096
	// maxBatch is how many queued messages one PublishAll takes: a burst
	// goes out in ack windows of up to this many events, a lone message
	// alone and at once.
	maxBatch = 256
)

type received struct {
	frames [][]byte
	at     time.Time
}

type listener struct {
	o     Options
	m     *Metrics
	log   zerolog.Logger
	kick  chan struct{}
	ready sync.Once
}

// Run subscribes to oned's stream and publishes every VM state change it
// reads until ctx is cancelled; it reconnects for ever. Messages already
// read when ctx is cancelled are still delivered (spooled, when NATS cannot
// take them any more). It returns nil on cancellation.
func Run(ctx context.Context, o Options) error {
	if o.Publisher == nil {
		return errors.New("listen opennebula: no publisher")
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	l := &listener{o: o, m: o.Metrics, kick: make(chan struct{}, 1),
		log: o.Log.With().Str("component", "listen").Str("cloud", o.Config.Cloud).Logger()}
	if !o.Config.Loopback() {
		l.log.Warn().Str("endpoint", o.Config.Endpoint).Msg("oned's stream is not on loopback: it is unauthenticated and unencrypted; keep it on a trusted network")
	}
	if o.Sweeper == nil {
		l.log.Warn().Msg("no sweep: what the stream misses (listener away, oned's high-water mark) waits for serve's periodic sweep")
	}
	q := make(chan received, queueSize)
	var g errgroup.Group
	g.Go(func() error {
		defer close(q)
		return l.receive(ctx, q)
	})
	g.Go(func() error {
		batch := make([]received, 0, maxBatch)
		for m := range q {
			batch = append(batch[:0], m)
			batch = appendQueued(batch, q)
			l.handle(ctx, batch)
		}
		return nil
	})
	g.Go(func() error { return l.sweepLoop(ctx) })
	return g.Wait()
}

// appendQueued appends what q holds now, without waiting, up to maxBatch.
func appendQueued(batch []received, q <-chan received) []received {
	for len(batch) < maxBatch {
		select {
		case m, ok := <-q:
			if !ok {
				return batch
			}
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

// receive connects, subscribes and reads messages into q until ctx ends.
func (l *listener) receive(ctx context.Context, q chan<- received) error {
	backoff := minBackoff
	for failures := 0; ctx.Err() == nil; {
		sub := zmq4.NewSub(ctx, zmq4.WithDialerMaxRetries(0), zmq4.WithDialerTimeout(dialTimeout),
			zmq4.WithLogger(stdlog.New(io.Discard, "", 0)))
		err := l.subscribe(sub)
		if err == nil {
			err = sub.Dial(l.o.Config.Endpoint)
		}
		if err != nil {
			_ = sub.Close()
			failures++
			ev := l.log.Debug()
			if failures == 1 || failures%100 == 0 {
				ev = l.log.Warn()
			}
			ev.Err(err).Int("attempts", failures).Str("endpoint", l.o.Config.Endpoint).Msg("cannot reach oned's stream; retrying")
			if !sleep(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		failures, backoff = 0, minBackoff
		l.m.connects.Inc()
		l.log.Info().Str("endpoint", l.o.Config.Endpoint).Strs("filters", l.o.Config.Filters).Msg("subscribed to oned's stream; sweeping")
		time.AfterFunc(sweepDelay, l.wake)
		l.ready.Do(func() {
			if l.o.Ready != nil {
				l.o.Ready()
			}
		})
		err = l.read(sub, q)
		_ = sub.Close()
		if ctx.Err() != nil {
			break
		}
		l.log.Warn().Err(err).Msg("lost oned's stream: what oned publishes until the reconnect is missed, and the sweep after it catches up")
		if !sleep(ctx, minBackoff) {
			break
		}
	}
	return nil
}

func (l *listener) subscribe(sub zmq4.Socket) error {
	for _, f := range l.o.Config.Filters {
		if err := sub.SetOption(zmq4.OptionSubscribe, f); err != nil {
			return fmt.Errorf("subscribe %q: %w", f, err)
		}
	}
	return nil
}

// read reads messages until the connection fails (or the socket's context
// ends).
func (l *listener) read(sub zmq4.Socket, q chan<- received) error {
	for {
		msg, err := sub.Recv()
		if err != nil {
			return err
		}
		q <- received{frames: msg.Frames, at: time.Now()}
	}
}

// wake asks for a sweep; asks made while one runs give one more after it.
func (l *listener) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

func (l *listener) sweepLoop(ctx context.Context) error {
	var tick <-chan time.Time
	if d := l.o.Config.SweepInterval; d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.kick:
		case <-tick:
		}
		if l.o.Sweeper == nil {
			continue
		}
		start := time.Now()
		if err := l.o.Sweeper.Sweep(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.m.sweeps.WithLabelValues("error").Inc()
			l.log.Warn().Err(err).Msg("sweep failed; the next one retries")
			continue
		}
		l.m.sweeps.WithLabelValues("ok").Inc()
		l.log.Info().Dur("took", time.Since(start)).Msg("sweep done")
	}
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
