package listen

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/delivery"
	"github.com/vmglue/vmglue/hooks/opennebula"
)

// handle turns messages into events and delivers them with one ack
// window. A malformed message is counted and skipped.
func (l *listener) handle(ctx context.Context, batch []received) {
	evs := make([]*eventbus.Event, 0, len(batch))
	for _, m := range batch {
		ev, notes, err := decode(m, l.o.Config.Cloud, l.o.Secrets)
		for _, n := range notes { // a challenge left out, and why
			l.log.Warn().Str("vm", ev.Data.ID).Msg(n)
		}
		if err != nil {
			l.m.messages.WithLabelValues(ResultMalformed).Inc()
			l.log.Warn().Err(err).Msg("malformed message skipped")
			continue
		}
		evs = append(evs, &ev)
	}
	if len(evs) == 0 {
		return
	}
	for i, r := range l.o.Publisher.PublishAll(ctx, evs) {
		l.m.messages.WithLabelValues(r.Outcome.String()).Inc()
		var e *zerolog.Event
		switch r.Outcome {
		case delivery.Published, delivery.Duplicate:
			e = l.log.Debug()
		case delivery.Spooled:
			e = l.log.Warn().AnErr("error", r.Err)
		default:
			e = l.log.Error().AnErr("error", r.Err).AnErr("spool_error", r.SpoolErr)
		}
		e.Str("vm", evs[i].Data.ID).Str("event_id", evs[i].ID).Str("outcome", r.Outcome.String()).Msg("state change")
	}
}

// decode reads a two-frame message: a VM state key and the base64
// HOOK_MESSAGE about the same VM. The state comes from the VM document and
// the secrets are protected with the hook's policy, so both give the same
// event id for one change; Seen is the time of receipt. notes say what
// Protect left out.
func decode(m received, cloud string, sec eventbus.Secrets) (ev eventbus.Event, notes []string, err error) {
	if len(m.frames) != 2 {
		return ev, nil, fmt.Errorf("%w: %d frames, want 2 (key, base64 message)", opennebula.ErrInvalidInput, len(m.frames))
	}
	key, err := opennebula.ParseStateKey(m.frames[0])
	if err != nil {
		return ev, nil, err
	}
	msg, err := opennebula.ParseHookMessage(m.frames[1], cloud, func(vm *eventbus.VM) { notes = sec.Protect(vm) })
	if err != nil {
		return ev, notes, fmt.Errorf("key of VM %s: %w", key.ID, err)
	}
	if msg.VM.ID != key.ID {
		return ev, notes, fmt.Errorf("%w: key of VM %s, message about VM %s", opennebula.ErrInvalidInput, key.ID, msg.VM.ID)
	}
	if ev, err = eventbus.NewEvent(msg.VM); err != nil {
		return ev, notes, fmt.Errorf("build event of VM %s: %w", key.ID, err)
	}
	ev.Data.Version.Seen = m.at.UnixNano()
	return ev, notes, nil
}
