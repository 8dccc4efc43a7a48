package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
)

// EventFilter selects stored events by cloud, VM id and kind; an empty
// field matches every value.
type EventFilter struct {
	Cloud string
	VM    string
	Kind  string // running, deleted, ... or vm.running
}

// Subject returns the subject filter of f on VMGLUE_EVENTS.
func (f EventFilter) Subject() (string, error) {
	kind := strings.TrimPrefix(f.Kind, eventbus.TypePrefix)
	if kind != "" && !eventbus.ValidKind(kind) {
		return "", fmt.Errorf("--type %q: want one of %s", f.Kind, strings.Join(eventbus.Kinds, ", "))
	}
	toks := []string{eventbus.SubjectPrefix}
	for _, o := range []struct{ v, name string }{{f.Cloud, "--cloud"}, {f.VM, "--vm"}, {kind, "--type"}} {
		if o.v == "" {
			toks = append(toks, "*")
			continue
		}
		if err := checkToken(o.v, o.name); err != nil {
			return "", err
		}
		toks = append(toks, o.v)
	}
	return strings.Join(toks, "."), nil
}

// ParseSince turns "1h30m" or an RFC 3339 time into a start time.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %q: negative duration", s)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration (1h) or a time (2026-11-22T10:00:00Z)", s)
}

// orderedConfig is the ordered consumer config of the events matching f,
// from since (a ParseSince start, if given) or else by policy.
func orderedConfig(f EventFilter, since string, policy jetstream.DeliverPolicy) (jetstream.OrderedConsumerConfig, error) {
	filter, err := f.Subject()
	if err != nil {
		return jetstream.OrderedConsumerConfig{}, err
	}
	cc := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: policy}
	if since != "" {
		t, err := ParseSince(since, time.Now())
		if err != nil {
			return cc, err
		}
		cc.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cc.OptStartTime = &t
	}
	return cc, nil
}

// TailRequest selects the events Tail passes on.
type TailRequest struct {
	EventFilter
	Since string // a duration ("1h") or a time (see ParseSince); "" = only new events
	All   bool   // from the first stored event
	// NoFollow stops after the last stored event instead of waiting for
	// new ones; it starts with the first stored event unless Since is set.
	NoFollow bool
	// ShowSecrets passes secret VM attributes on; by default their values
	// are eventbus.RedactedValue.
	ShowSecrets bool
	// Secrets are the secret attribute names (config secret_attributes);
	// nil: eventbus.DefaultSecretPatterns.
	Secrets *eventbus.SecretNames
}

// Tail calls each with the JSON body of every selected event, in stream
// order, until ctx is done (or, with NoFollow, until every stored event was
// passed). A body that is not a readable event is passed unchanged. An
// error of each ends Tail with that error.
func Tail(ctx context.Context, js jetstream.JetStream, req TailRequest, each func(data []byte) error) error {
	policy := jetstream.DeliverNewPolicy
	if req.All || req.NoFollow {
		policy = jetstream.DeliverAllPolicy
	}
	cc, err := orderedConfig(req.EventFilter, req.Since, policy)
	if err != nil {
		return err
	}
	cons, err := js.OrderedConsumer(ctx, eventbus.StreamEvents, cc)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return eventbus.ErrNotProvisioned
		}
		return fmt.Errorf("tail: %w", err)
	}
	if req.NoFollow {
		info, err := cons.Info(ctx)
		if err != nil {
			return fmt.Errorf("tail: %w", err)
		}
		if info.NumPending == 0 {
			return nil
		}
	}
	err = consume(ctx, cons, "tail", func(m jetstream.Msg) (bool, error) {
		data := m.Data()
		if !req.ShowSecrets {
			data = req.Secrets.RedactEventJSON(data)
		}
		if err := each(data); err != nil {
			return true, err
		}
		if req.NoFollow {
			md, err := m.Metadata()
			return err == nil && md.NumPending == 0, nil
		}
		return false, nil
	})
	if ctx.Err() != nil {
		return nil // following until ctx is done is success
	}
	return err
}

// scanEvents calls fn, in stream order, for every event that cc selects and
// that was stored when the scan started: events published meanwhile (by fn
// itself, say) are not part of the scan.
func scanEvents(ctx context.Context, js jetstream.JetStream, cc jetstream.OrderedConsumerConfig, fn func(m jetstream.Msg, seq uint64) error) error {
	st, err := js.Stream(ctx, eventbus.StreamEvents)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return eventbus.ErrNotProvisioned
	}
	if err != nil {
		return fmt.Errorf("open stream %s: %w", eventbus.StreamEvents, err)
	}
	last := st.CachedInfo().State.LastSeq
	if st.CachedInfo().State.Msgs == 0 {
		return nil
	}
	cons, err := js.OrderedConsumer(ctx, eventbus.StreamEvents, cc)
	if err != nil {
		return fmt.Errorf("read %s: %w", eventbus.StreamEvents, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("read %s: %w", eventbus.StreamEvents, err)
	}
	if info.NumPending == 0 {
		return nil
	}
	return consume(ctx, cons, "read "+eventbus.StreamEvents, func(m jetstream.Msg) (bool, error) {
		md, err := m.Metadata()
		if err != nil {
			return true, fmt.Errorf("read %s: %w", eventbus.StreamEvents, err)
		}
		seq := md.Sequence.Stream
		if seq > last {
			return true, nil
		}
		if err := fn(m, seq); err != nil {
			return true, err
		}
		return md.NumPending == 0 || seq == last, nil
	})
}

// consume calls fn with each message of cons until fn returns true or an
// error, which consume returns. When ctx ends first, it returns ctx.Err();
// other failures to read are prefixed with what.
func consume(ctx context.Context, cons jetstream.Consumer, what string, fn func(jetstream.Msg) (bool, error)) error {
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%s: %w", what, err)
		}
		if done, err := fn(m); done || err != nil {
			return err
		}
	}
}
