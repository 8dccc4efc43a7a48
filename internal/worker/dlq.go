package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
)

// HeaderRetry is set on an event that `vmglue dlq retry` republished; its
// value is the sequence of the dead letter in VMGLUE_DLQ.
const HeaderRetry = "Vmglue-Retry"

// HeaderForWorker addresses a republished event to one worker (`vmglue dlq
// retry` to the dead letter's worker, `vmglue replay --worker`): every
// other worker acks it without converging (result "skipped").
const HeaderForWorker = "Vmglue-For-Worker"

// StoredDeadLetter is a dead letter with its sequence in VMGLUE_DLQ, the
// number `vmglue dlq retry` and `drop` take.
type StoredDeadLetter struct {
	Seq uint64 `json:"seq"`
	DeadLetter
}

// ErrDeadLetterNotFound is returned for a sequence that holds no dead letter
// (never did, already retried or dropped, or aged out).
var ErrDeadLetterNotFound = errors.New("no such dead letter")

// ListDeadLetters returns the dead letters of one worker ("" for every
// worker), oldest first.
func ListDeadLetters(ctx context.Context, js jetstream.JetStream, worker string) ([]StoredDeadLetter, error) {
	filter := eventbus.DLQPrefix + ".>"
	if worker != "" {
		if !eventbus.ValidToken(worker) {
			return nil, fmt.Errorf("worker name %q: use letters, digits, '-' and '_'", worker)
		}
		filter = eventbus.DLQPrefix + "." + worker + ".>"
	}
	return listDLQ(ctx, js, filter)
}

// ListVMDeadLetters returns the dead letters of one VM, of every worker,
// oldest first.
func ListVMDeadLetters(ctx context.Context, js jetstream.JetStream, cloud, vmid string) ([]StoredDeadLetter, error) {
	return listDLQ(ctx, js, DLQSubject("*", cloud, vmid))
}

// listDLQ reads every dead letter on subjects matching filter, one stream
// get per message (next by subject): the DLQ is small, and this needs no
// consumer state on the server.
func listDLQ(ctx context.Context, js jetstream.JetStream, filter string) ([]StoredDeadLetter, error) {
	st, err := js.Stream(ctx, eventbus.StreamDLQ)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", eventbus.StreamDLQ, err)
	}
	var out []StoredDeadLetter
	for seq := uint64(1); ; {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", eventbus.StreamDLQ, err)
		}
		out = append(out, decodeDeadLetter(m))
		seq = m.Sequence + 1
	}
}

// decodeDeadLetter decodes a stored dead letter. One that does not decode
// is still listed (so that it can be dropped) with the problem as Error.
func decodeDeadLetter(m *jetstream.RawStreamMsg) StoredDeadLetter {
	s := StoredDeadLetter{Seq: m.Sequence}
	if err := json.Unmarshal(m.Data, &s.DeadLetter); err != nil {
		s.DeadLetter = DeadLetter{Reason: "unreadable", Error: fmt.Sprintf("decode dead letter: %v", err)}
	}
	if s.Worker == "" {
		if t := strings.Split(m.Subject, "."); len(t) > 2 {
			s.Worker = t[2]
		}
	}
	if s.FailedAt.IsZero() {
		s.FailedAt = m.Time
	}
	return s
}

// GetDeadLetter returns the dead letter stored at seq in VMGLUE_DLQ.
func GetDeadLetter(ctx context.Context, js jetstream.JetStream, seq uint64) (StoredDeadLetter, error) {
	st, err := js.Stream(ctx, eventbus.StreamDLQ)
	if err != nil {
		return StoredDeadLetter{}, fmt.Errorf("open stream %s: %w", eventbus.StreamDLQ, err)
	}
	m, err := st.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return StoredDeadLetter{}, fmt.Errorf("dead letter %d: %w", seq, ErrDeadLetterNotFound)
	}
	if err != nil {
		return StoredDeadLetter{}, fmt.Errorf("get dead letter %d: %w", seq, err)
	}
	return decodeDeadLetter(m), nil
}

// RetryDeadLetter republishes the original event of the dead letter at seq
// to its original subject, then deletes the dead letter.
//
// The event is published without its Nats-Msg-Id: the event stream's
// duplicate window would otherwise drop it silently. It lands in the stream
// as a new message, so every worker's durable consumer sees it again, not
// only the worker that gave up. That is safe: workers converge each VM to
// its newest snapshot, and a worker whose target is already right changes
// nothing. If the delete fails after the publish, the error says so; a
// second retry republishes again, which is equally harmless.
func RetryDeadLetter(ctx context.Context, js jetstream.JetStream, seq uint64) error {
	dl, err := GetDeadLetter(ctx, js, seq)
	if err != nil {
		return err
	}
	if dl.Reason == ReasonInvalid || dl.Reason == "unreadable" {
		return fmt.Errorf("retry dead letter %d: %s: retrying cannot help, drop it", seq, dl.Reason)
	}
	if !strings.HasPrefix(dl.Subject, eventbus.SubjectPrefix+".") {
		return fmt.Errorf("retry dead letter %d: original subject %q is not an event subject", seq, dl.Subject)
	}
	body := []byte(dl.Event)
	if dl.EventCut { // an excerpt: the whole event is in the event stream
		if body, err = storedEvent(ctx, js, dl.StreamSeq); err != nil {
			return fmt.Errorf("retry dead letter %d: %w", seq, err)
		}
	}
	if _, err := eventbus.Unmarshal(body); err != nil {
		return fmt.Errorf("retry dead letter %d: %w", seq, err)
	}
	m := nats.NewMsg(dl.Subject)
	m.Data = body
	m.Header.Set(HeaderRetry, strconv.FormatUint(seq, 10))
	m.Header.Set(HeaderForWorker, dl.Worker)
	if _, err := js.PublishMsg(ctx, m, jetstream.WithExpectStream(eventbus.StreamEvents)); err != nil {
		return fmt.Errorf("retry dead letter %d: publish to %s: %w", seq, dl.Subject, err)
	}
	if err := DropDeadLetter(ctx, js, seq); err != nil {
		return fmt.Errorf("retry dead letter %d: event republished, but: %w", seq, err)
	}
	return nil
}

// DropDeadLetter deletes the dead letter at seq from VMGLUE_DLQ.
func DropDeadLetter(ctx context.Context, js jetstream.JetStream, seq uint64) error {
	st, err := js.Stream(ctx, eventbus.StreamDLQ)
	if err != nil {
		return fmt.Errorf("open stream %s: %w", eventbus.StreamDLQ, err)
	}
	if err := st.DeleteMsg(ctx, seq); err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeMessageNotFound ||
			errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
			return fmt.Errorf("delete dead letter %d: %w", seq, ErrDeadLetterNotFound)
		}
		return fmt.Errorf("delete dead letter %d: %w", seq, err)
	}
	return nil
}

// storedEvent reads the event at seq of VMGLUE_EVENTS.
func storedEvent(ctx context.Context, js jetstream.JetStream, seq uint64) ([]byte, error) {
	st, err := js.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", eventbus.StreamEvents, err)
	}
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		return nil, fmt.Errorf("read event %d of %s (the dead letter holds an excerpt): %w", seq, eventbus.StreamEvents, err)
	}
	return m.Data, nil
}
