package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
)

// Reasons of a dead letter.
const (
	ReasonPermanent     = "permanent"      // the target or Desired returned a Permanent error
	ReasonConflict      = "conflict"       // a Permanent ErrConflict: a foreign object is in the way
	ReasonDrift         = "drift"          // a verified converge found objects changed by hand that the target leaves so (ErrDriftKept)
	ReasonMaxDeliveries = "max deliveries" // transient failures MaxDeliver times in a row
	ReasonInvalid       = "invalid event"  // the message is not a valid Event
	// ReasonVersion: the event's vmglueversion has a major version this
	// vmglue does not know (eventbus.ErrUnknownVersion); retry it after
	// the upgrade.
	ReasonVersion = "unknown version"
)

// Headers of a dead-letter message.
const (
	HeaderWorker = "Vmglue-Worker"
	HeaderReason = "Vmglue-Reason"
)

// Bounds of a dead letter, so that it never fails for its size whatever
// the event (an event near NATS' max_payload could otherwise never be
// dead-lettered and would be retried for ever).
const (
	// MaxDeadLetterEvent is the largest event a dead letter carries
	// whole. A larger one is carried as an excerpt (EventCut): the event
	// without its attributes and labels (and NICs, if still too large),
	// and is found whole in VMGLUE_EVENTS at StreamSeq.
	MaxDeadLetterEvent = 64 << 10
	// MaxDeadLetterError bounds the error text of a dead letter.
	MaxDeadLetterError = 4 << 10
)

// DeadLetter is the JSON payload of a message in the stream VMGLUE_DLQ, on
// subject vmglue.dlq.<worker>.<cloud>.<vmid>.
type DeadLetter struct {
	Worker string `json:"worker"`
	Reason string `json:"reason"`
	Error  string `json:"error"`
	// Event is the original message body, normally the event's JSON, or
	// its excerpt when EventCut is set.
	Event json.RawMessage `json:"event"`
	// EventCut says Event is an excerpt of an event larger than
	// MaxDeadLetterEvent; EventSize is the size of the whole one.
	EventCut  bool `json:"event_cut,omitempty"`
	EventSize int  `json:"event_size,omitempty"`
	// Subject and StreamSeq locate the original event in VMGLUE_EVENTS.
	Subject    string    `json:"subject"`
	StreamSeq  uint64    `json:"stream_seq"`
	FailedAt   time.Time `json:"failed_at"`
	Deliveries uint64    `json:"deliveries"`
}

// DLQSubject returns the dead-letter subject of a worker and VM.
func DLQSubject(worker, cloud, vmid string) string {
	return eventbus.DLQPrefix + "." + worker + "." + cloud + "." + vmid
}

// deadLetter publishes the dead letter of msg and waits for the stream's ack.
// Its Nats-Msg-Id (worker and stream sequence) makes a second dead letter of
// the same event, after a lost Term, a duplicate.
func deadLetter(ctx context.Context, js jetstream.JetStream, worker, reason string, cause error, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("dead-letter: message metadata: %w", err)
	}
	cloud, vmid := subjectVM(msg.Subject())
	dl := DeadLetter{
		Worker: worker, Reason: reason,
		Subject: msg.Subject(), StreamSeq: meta.Sequence.Stream,
		FailedAt: time.Now().UTC(), Deliveries: meta.NumDelivered,
	}
	dl.setEvent(msg.Data())
	if cause != nil {
		dl.Error = clipText(cause.Error(), MaxDeadLetterError)
	}
	b, err := json.Marshal(dl)
	if err != nil {
		return fmt.Errorf("dead-letter: encode: %w", err)
	}
	m := nats.NewMsg(DLQSubject(worker, cloud, vmid))
	m.Data = b
	m.Header.Set(HeaderWorker, worker)
	m.Header.Set(HeaderReason, reason)
	id := "dlq-" + worker + "-" + strconv.FormatUint(meta.Sequence.Stream, 10)
	if _, err := js.PublishMsg(ctx, m, jetstream.WithMsgID(id), jetstream.WithExpectStream(eventbus.StreamDLQ)); err != nil {
		return fmt.Errorf("dead-letter to %s: %w", eventbus.StreamDLQ, err)
	}
	return nil
}

// subjectVM returns the cloud and vm id tokens of an event subject
// vmglue.vm.<cloud>.<vmid>.<kind>, "_" for what is missing.
func subjectVM(subject string) (cloud, vmid string) {
	t := strings.Split(subject, ".")
	cloud, vmid = "_", "_"
	if len(t) > 2 && eventbus.ValidToken(t[2]) {
		cloud = t[2]
	}
	if len(t) > 3 && eventbus.ValidToken(t[3]) {
		vmid = t[3]
	}
	return cloud, vmid
}

// setEvent stores body, the original message, whole or as a bounded
// excerpt.
func (dl *DeadLetter) setEvent(body []byte) {
	if len(body) <= MaxDeadLetterEvent {
		if !json.Valid(body) {
			body, _ = json.Marshal(strings.ToValidUTF8(string(body), "\uFFFD"))
		}
		dl.Event = body
		return
	}
	dl.EventCut, dl.EventSize = true, len(body)
	if ev, err := eventbus.Unmarshal(body); err == nil {
		ev.Data.Attributes, ev.Data.Labels = nil, nil
		if b, err := ev.Marshal(); err == nil && len(b) <= MaxDeadLetterEvent {
			dl.Event = b
			return
		}
		ev.Data.NICs = nil
		if b, err := ev.Marshal(); err == nil && len(b) <= MaxDeadLetterEvent {
			dl.Event = b
			return
		}
	}
	dl.Event, _ = json.Marshal(clipText(string(body), 4<<10))
}

// clipText cuts s to at most n bytes of valid UTF-8, marking the cut.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "… (cut)"
}
