package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/delivery"
	"github.com/vmglue/vmglue/hooks/openstack"
)

// Results of one notification, the label of vmglue_bridge_notifications_total.
const (
	ResultPublished  = "published"   // stored in the event stream
	ResultDuplicate  = "duplicate"   // the stream had it already (a redelivery)
	ResultSpooled    = "spooled"     // NATS could not take it: in the spool, sent when NATS is back
	ResultIgnored    = "ignored"     // an event type vmglue does not map
	ResultDeadLetter = "dead_letter" // poison: stored in VMGLUE_DLQ
)

// Lookup completes a VM from the cloud's API.
type Lookup interface {
	// Complete fills what vm lacks (addresses) from the server with vm's id.
	Complete(ctx context.Context, vm *eventbus.VM) error
}

// handler turns one AMQP message into a stored event or dead letter.
type handler struct {
	opts    openstack.Options
	pub     Publisher
	dlq     DeadLetterer
	lookup  Lookup // nil: off
	metrics *Metrics
	log     zerolog.Logger
	// backoff bounds of the retries while NATS cannot take a message.
	backoffBase, backoffMax time.Duration
}

// handle returns nil once the message may be acknowledged, or ctx's error
// when the bridge stops before: the message must then stay unacknowledged.
func (h *handler) handle(ctx context.Context, routingKey string, body []byte) error {
	seen := time.Now()
	n, err := openstack.Decode(body)
	if err != nil {
		return h.poison(ctx, "", routingKey, body, err)
	}
	ev, err := h.opts.Event(n)
	switch {
	case errors.Is(err, openstack.ErrIgnored):
		h.metrics.result(ResultIgnored)
		h.log.Debug().Str("event_type", n.EventType).Msg("ignored")
		return nil
	case err != nil:
		return h.poison(ctx, "", routingKey, body, fmt.Errorf("%s %.80s: %w", n.Format, n.EventType, err))
	}
	log := h.log.With().Str("vm", ev.Data.ID).Str("event_id", ev.ID).Str("event_type", n.EventType).Logger()
	if h.lookup != nil && needsLookup(&ev.Data) {
		if ev, err = h.complete(ctx, ev); err != nil {
			return h.poison(ctx, ev.Data.ID, routingKey, body, err)
		}
	}
	ev.Data.Version.Seen = seen.UnixNano() // not part of the id: a redelivery stays a duplicate
	return h.retry(ctx, log, "deliver "+ev.ID, func(ctx context.Context) error {
		r := h.pub.Publish(ctx, &ev)
		if !r.Outcome.Safe() {
			return fmt.Errorf("%s: %w (spool: %v)", r.Outcome, r.Err, r.SpoolErr)
		}
		h.metrics.result(r.Outcome.String())
		l := log.Info()
		if r.Outcome == delivery.Spooled {
			l = log.Warn().AnErr("cause", r.Err)
		}
		l.Str("kind", ev.Data.Kind).Uint64("seq", r.Sequence).Str("outcome", r.Outcome.String()).Msg("delivered")
		return nil
	})
}

// poison stores the dead letter of a message that cannot be read.
func (h *handler) poison(ctx context.Context, vmid, routingKey string, body []byte, cause error) error {
	subject, id, dl := deadLetterOf(h.opts.Cloud, vmid, routingKey, body, cause)
	return h.retry(ctx, h.log, "dead-letter", func(ctx context.Context) error {
		if err := h.dlq.DeadLetter(ctx, subject, id, dl); err != nil {
			return err
		}
		h.metrics.result(ResultDeadLetter)
		h.log.Warn().Str("routing_key", routingKey).Str("error", dl.Error).Msg("poison message dead-lettered")
		return nil
	})
}

// retry runs fn until it succeeds, with exponential backoff, or until ctx
// is done (the message then stays unacknowledged). Each attempt has 5 s.
func (h *handler) retry(ctx context.Context, log zerolog.Logger, what string, fn func(context.Context) error) error {
	wait := h.backoffBase
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		h.metrics.retries.Inc()
		log.Warn().Err(err).Int("attempt", attempt).Dur("retry_in", wait).Msg(what + " failed: the message stays unacknowledged")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, h.backoffMax)
	}
}

// complete fills ev from the cloud's API. A failed lookup is logged and ev
// kept as it is; an error means the completed VM makes no valid event.
func (h *handler) complete(ctx context.Context, ev eventbus.Event) (eventbus.Event, error) {
	vm := ev.Data
	if err := h.lookup.Complete(ctx, &vm); err != nil {
		h.log.Warn().Err(err).Str("vm", vm.ID).Str("event_id", ev.ID).Msg("lookup of the server failed: publishing the notification as it is")
		return ev, nil
	}
	h.opts.Secrets.Protect(&vm) // metadata from the API is tenant input too
	ev.Data = vm
	return rebuild(ev)
}

// needsLookup: a running or changing VM without any address.
func needsLookup(vm *eventbus.VM) bool {
	if vm.Kind != eventbus.KindRunning && vm.Kind != eventbus.KindChanging {
		return false
	}
	for _, n := range vm.NICs {
		if n.IP != "" || n.IP6 != "" {
			return false
		}
	}
	return true
}

// rebuild recomputes an event after its VM changed, keeping its id (the
// notification's message_id: a redelivery must still be a duplicate).
func rebuild(ev eventbus.Event) (eventbus.Event, error) {
	out, err := eventbus.NewEvent(ev.Data)
	if err != nil {
		return ev, fmt.Errorf("%w: after lookup: %w", openstack.ErrInvalidMessage, err)
	}
	out.ID = ev.ID
	return out, nil
}
