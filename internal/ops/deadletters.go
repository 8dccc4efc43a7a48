package ops

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// DeadLetterRequest selects dead letters.
type DeadLetterRequest struct {
	Worker string // "" for every worker
	// ShowSecrets keeps secret VM attributes in the events; by default
	// their values are eventbus.RedactedValue.
	ShowSecrets bool
	// Secrets are the secret attribute names (config secret_attributes);
	// nil: eventbus.DefaultSecretPatterns.
	Secrets *eventbus.SecretNames
}

// DeadLetters returns the dead letters of req.Worker (or of every worker),
// oldest first.
func DeadLetters(ctx context.Context, js jetstream.JetStream, req DeadLetterRequest) ([]worker.StoredDeadLetter, error) {
	dls, err := worker.ListDeadLetters(ctx, js, req.Worker)
	if err != nil {
		return nil, err
	}
	return redactDeadLetters(dls, req.ShowSecrets, req.Secrets), nil
}

// redactDeadLetters redacts, in place, the secret attributes of the events
// of dls (names: nil for the defaults) unless show, and returns dls.
func redactDeadLetters(dls []worker.StoredDeadLetter, show bool, names *eventbus.SecretNames) []worker.StoredDeadLetter {
	if !show {
		for i := range dls {
			dls[i].Event = names.RedactEventJSON(dls[i].Event)
		}
	}
	return dls
}

// DeadLetterVM names the VM of a dead letter, "<cloud>/<vmid>", from its
// event subject; "?" when the subject does not say.
func DeadLetterVM(dl worker.StoredDeadLetter) string {
	t := strings.Split(dl.Subject, ".")
	if len(t) < 4 {
		return "?"
	}
	return t[2] + "/" + t[3]
}

// DeadLetterKind is the kind of a dead letter's event (running, ...), from
// its event subject; "?" when the subject does not say.
func DeadLetterKind(dl worker.StoredDeadLetter) string {
	if t := strings.Split(dl.Subject, "."); len(t) == 5 {
		return t[4]
	}
	return "?"
}

// Settle is what SettleDeadLetters does with each dead letter.
type Settle string

// The ways to settle a dead letter.
const (
	// Retry republishes the original event (worker.RetryDeadLetter), then
	// deletes the dead letter.
	Retry Settle = "retry"
	// Drop deletes the dead letter (worker.DropDeadLetter).
	Drop Settle = "drop"
)

// Done is the past tense of s: "retried", "dropped".
func (s Settle) Done() string {
	if s == Retry {
		return "retried"
	}
	return "dropped"
}

// SettleRequest names the dead letters to retry or drop.
type SettleRequest struct {
	Action Settle
	// Seqs are dead-letter sequences (worker.StoredDeadLetter.Seq); with
	// Worker set, each must be that worker's.
	Seqs []uint64
	// All settles every dead letter (of Worker); not with Seqs.
	All    bool
	Worker string
}

// Check rejects a request without dead letters, or with both Seqs and All.
func (r *SettleRequest) Check() error {
	if r.Action != Retry && r.Action != Drop {
		return fmt.Errorf("dlq: unknown action %q", r.Action)
	}
	if r.All == (len(r.Seqs) > 0) {
		return fmt.Errorf("dlq %s: give dead-letter sequence numbers (see `vmglue dlq list`) or --all", r.Action)
	}
	return nil
}

// SettleDeadLetters retries or drops the dead letters of req, oldest first
// with All, else in the order given, after checking that each given one
// exists (and is Worker's). It calls each, when not nil, after each dead
// letter is settled (its event's secrets redacted), and returns how many
// were.
func SettleDeadLetters(ctx context.Context, js jetstream.JetStream, req SettleRequest, each func(worker.StoredDeadLetter) error) (int, error) {
	if err := req.Check(); err != nil {
		return 0, err
	}
	fn := worker.DropDeadLetter
	if req.Action == Retry {
		fn = worker.RetryDeadLetter
	}
	var dls []worker.StoredDeadLetter
	var err error
	if req.All {
		dls, err = worker.ListDeadLetters(ctx, js, req.Worker)
	} else {
		dls, err = getDeadLetters(ctx, js, req.Seqs, req.Worker)
	}
	if err != nil {
		return 0, err
	}
	redactDeadLetters(dls, false, nil) // for each; the settling reads the stored letter
	for i, dl := range dls {
		if err := fn(ctx, js, dl.Seq); err != nil {
			return i, fmt.Errorf("%w (%d of %d %s before)", err, i, len(dls), req.Action.Done())
		}
		if each != nil {
			if err := each(dl); err != nil {
				return i + 1, err
			}
		}
	}
	return len(dls), nil
}

// getDeadLetters reads the given dead letters and, with a worker name,
// checks that each is that worker's: a guard against a mistyped number.
func getDeadLetters(ctx context.Context, js jetstream.JetStream, seqs []uint64, workerName string) ([]worker.StoredDeadLetter, error) {
	out := make([]worker.StoredDeadLetter, 0, len(seqs))
	for _, seq := range seqs {
		dl, err := worker.GetDeadLetter(ctx, js, seq)
		if err != nil {
			return nil, err
		}
		if workerName != "" && dl.Worker != workerName {
			return nil, fmt.Errorf("dead letter %d is worker %s's, not %s's", seq, dl.Worker, workerName)
		}
		out = append(out, dl)
	}
	return out, nil
}
