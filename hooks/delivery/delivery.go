// Package delivery takes the events of every vmglue source to the bus: it
// connects to NATS, first sends what is spooled, publishes each event with
// its id as Nats-Msg-Id, waits for the JetStream ack, and writes the event
// to the local spool (hooks/spool) when NATS cannot take it. A source only
// reads its cloud's input and maps it to an eventbus.VM; delivery does the
// rest, the same way for all of them.
//
// Two modes share that path:
//
//   - Once: a one-shot process (the OpenNebula hook). Connect without
//     reconnects, flush the spool, publish, exit, all within one budget
//     (Options.Timeout, or the context's deadline). A cancelled context
//     (SIGTERM) before the ack spools the event.
//   - Publisher: a resident process (the ZeroMQ listener, the Nova bridge,
//     the sweep). One long-lived connection with reconnects; Publish sends
//     one event and waits for its ack, PublishAll several with one ack
//     window; while NATS is down events go to the
//     spool at once, and Run sends them, oldest first, as soon as NATS is
//     back. Events published while the spool holds older ones go behind
//     them, so the order of one source is kept.
//
// Every delivery ends in an Outcome: Published, Duplicate (already stored:
// the stream's duplicate window dropped it), Spooled (durably on disk, sent
// later), Refused (the bus refuses it for good, e.g. larger than the
// server's max_payload: durably kept in the spool's quarantine directory,
// never retried, so it blocks nothing) or Lost (neither stored nor kept). Outcome.Safe says whether a source may now
// acknowledge its own input (e.g. the bridge acks RabbitMQ).
//
// Options.Conn.URL may list several NATS URLs, comma separated: the event
// goes to whichever node answers.
package delivery

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/spool"
)

// DefaultTimeout bounds a one-shot run, or one publish and its ack.
const DefaultTimeout = 5 * time.Second

// DefaultFlushInterval is how often a resident Publisher retries a spool
// that is not empty.
const DefaultFlushInterval = time.Second

// ErrFlushTimeUp is the flush problem of a one-shot run whose flush used up
// its share of the budget; the next run sends the rest.
var ErrFlushTimeUp = errors.New("flush time used up, the next run sends the rest")

// ErrNotConnected is why a resident Publisher spooled an event while its
// connection was down.
var ErrNotConnected = errors.New("nats unreachable: not connected")

// Options configure a delivery.
type Options struct {
	// Conn are the NATS settings; Conn.URL may be a comma-separated list.
	// Conn.Timeout is set by Once from its budget. Every source is in
	// NATS role eventbus.RoleHook: Conn.InboxPrefix defaults to its inbox.
	Conn eventbus.ConnOptions
	// SpoolDir holds the events NATS could not take.
	SpoolDir string
	// Timeout is the budget of a one-shot run (connect, flush, publish,
	// ack), or of one Publish or PublishAll and their acks in a Publisher
	// (DefaultTimeout).
	Timeout time.Duration
	// FlushInterval is how often a Publisher retries a spool that is not
	// empty (DefaultFlushInterval); it also retries at once on a reconnect.
	FlushInterval time.Duration
	// Log receives a Publisher's connection and flush messages (none by
	// default). It never gets a secret.
	Log zerolog.Logger
}

func (o *Options) setDefaults() {
	if o.Conn.InboxPrefix == "" {
		o.Conn.InboxPrefix = eventbus.InboxPrefix(eventbus.RoleHook)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
}

// Outcome is what happened to one event.
type Outcome int

// Outcomes of a delivery. The zero Outcome means no event was given (a
// flush-only run).
const (
	Published Outcome = iota + 1 // stored by the stream, acknowledged
	Duplicate                    // already stored: dropped by the duplicate window
	Spooled                      // NATS could not take it; durably on disk, sent later
	Lost                         // neither published nor spooled
	Refused                      // the bus refuses it for good; kept in the spool's quarantine
)

var outcomeNames = map[Outcome]string{Published: "published", Duplicate: "duplicate", Spooled: "spooled", Lost: "lost", Refused: "refused"}

func (o Outcome) String() string {
	if s, ok := outcomeNames[o]; ok {
		return s
	}
	return "none"
}

// Safe reports whether the event is stored or durably kept on disk
// (spooled or quarantined), so that the source may acknowledge its own
// input: sending that input again cannot do better.
func (o Outcome) Safe() bool { return o == Published || o == Duplicate || o == Spooled || o == Refused }

// Result is the delivery of one event.
type Result struct {
	Outcome Outcome
	// Sequence is the stream sequence of a Published event.
	Sequence uint64
	// Path is the file of a Spooled or Refused event.
	Path string
	// Err says why the event was not published (Spooled, Lost).
	Err error
	// SpoolErr says why a Lost event could not be spooled.
	SpoolErr error
}

// Keep writes ev to the spool in dir after a failed publish (cause) and
// returns Spooled, or Lost when the spool cannot take it either. When cause
// can never succeed (Permanent), ev goes to the spool's quarantine
// directory instead and Keep returns Refused: a retry would fail the same
// way and hold up the events behind it.
func Keep(dir string, ev *eventbus.Event, cause error) Result {
	sp := spool.New(dir)
	if Permanent(cause) {
		path, err := sp.WriteQuarantined(ev, cause)
		if err != nil {
			return Result{Outcome: Lost, Err: cause, SpoolErr: err}
		}
		return Result{Outcome: Refused, Err: cause, Path: path}
	}
	path, err := sp.Write(ev)
	if err != nil {
		return Result{Outcome: Lost, Err: cause, SpoolErr: err}
	}
	return Result{Outcome: Spooled, Err: cause, Path: path}
}

// Permanent reports whether a publish error can never succeed for this
// event, whatever the retry: the event is larger than the server's
// max_payload (nats.ErrMaxPayload) or the stream's max_msg_size, or too
// large to build (eventbus.ErrTooLarge).
func Permanent(err error) bool {
	var ae *jetstream.APIError
	return errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, eventbus.ErrTooLarge) ||
		errors.As(err, &ae) && ae.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum
}

// publish sends ev and waits for the ack, marking a Permanent error as a
// spool.PermanentError for Flush.
func publish(ctx context.Context, js jetstream.JetStream, ev *eventbus.Event) (eventbus.PublishResult, error) {
	res, err := eventbus.Publish(ctx, js, ev)
	if Permanent(err) {
		err = spool.Permanent(err)
	}
	return res, err
}

// send publishes ev and waits for the ack.
func send(ctx context.Context, js jetstream.JetStream, ev *eventbus.Event) Result {
	return result(publish(ctx, js, ev))
}

// result is the Result of a publish that returned res, err.
func result(res eventbus.PublishResult, err error) Result {
	switch {
	case err != nil:
		return Result{Err: err}
	case res.Duplicate:
		return Result{Outcome: Duplicate, Sequence: res.Sequence}
	}
	return Result{Outcome: Published, Sequence: res.Sequence}
}

// flush sends the spool in dir, oldest first, each event within perEvent
// (0: ctx alone bounds it). Another process flushing it is not an error.
func flush(ctx context.Context, js jetstream.JetStream, dir string, perEvent time.Duration) (int, error) {
	n, err := spool.New(dir).Flush(ctx, SpoolPublish(js, perEvent))
	if errors.Is(err, spool.ErrBusy) {
		return n, nil
	}
	return n, err
}

// SpoolPublish is the spool.PublishFunc of every flush: it publishes one
// event within perEvent (0: ctx alone bounds it) and marks an error that
// can never succeed (Permanent) as a spool.PermanentError, so that Flush
// quarantines that file and goes on.
func SpoolPublish(js jetstream.JetStream, perEvent time.Duration) spool.PublishFunc {
	return func(ctx context.Context, ev *eventbus.Event) error {
		if perEvent > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, perEvent)
			defer cancel()
		}
		_, err := publish(ctx, js, ev)
		return err
	}
}
