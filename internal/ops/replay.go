package ops

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ReplayRequest selects the stored events Replay republishes.
type ReplayRequest struct {
	EventFilter
	Since         string // a duration ("1h") or a time (see ParseSince)
	StartSequence uint64 // from this stream sequence on (not with Since)
	// All allows a request without any other filter: every stored event.
	All bool
	// Worker, when set, addresses the replayed events to that worker only
	// (worker.HeaderForWorker); the others ack them unseen.
	Worker string
	// DryRun publishes nothing: Replay only reports what it would replay.
	DryRun bool
}

// Check rejects requests that are unsupported or would replay everything
// by accident.
func (r *ReplayRequest) Check() error {
	if r.Worker != "" {
		if err := checkToken(r.Worker, "--worker"); err != nil {
			return err
		}
	}
	switch {
	case r.Since != "" && r.StartSequence != 0:
		return errors.New("--since and --start-sequence: use one of them")
	case r.Since == "" && r.StartSequence == 0 && r.Cloud == "" && r.VM == "" && r.Kind == "" && !r.All:
		return errors.New("no filter: give --since, --start-sequence, --vm, --cloud or --type, or --all to replay every stored event")
	}
	return nil
}

// Replay republishes the stored events selected by req, each to its own
// subject, without its Nats-Msg-Id (the stream's duplicate window would drop
// it) and with the header eventbus.HeaderReplay. Only events stored before
// it started are replayed, never its own. It calls each, when not nil, with
// every selected event (secrets redacted) before publishing it, or instead
// of publishing it with DryRun, and returns how many events were selected.
func Replay(ctx context.Context, js jetstream.JetStream, req ReplayRequest, each func(StoredEvent) error) (int, error) {
	if err := req.Check(); err != nil {
		return 0, err
	}
	cc, err := orderedConfig(req.EventFilter, req.Since, jetstream.DeliverAllPolicy)
	if err != nil {
		return 0, err
	}
	if req.StartSequence != 0 { // Check: not with Since
		cc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cc.OptStartSeq = req.StartSequence
	}
	n := 0
	err = scanEvents(ctx, js, cc, func(m jetstream.Msg, seq uint64) error {
		n++
		if each != nil {
			if err := each(storedEvent(m, seq, false, nil)); err != nil {
				return err
			}
		}
		if req.DryRun {
			return nil
		}
		if err := republish(ctx, js, m.Subject(), m.Data(), req.Worker); err != nil {
			return fmt.Errorf("replay #%d: %w (%d event(s) replayed before)", seq, err, n-1)
		}
		return nil
	})
	return n, err
}
