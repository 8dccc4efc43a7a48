package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/delivery"
	"github.com/vmglue/vmglue/hooks/openstack"
	"github.com/vmglue/vmglue/internal/worker"
)

// Publisher delivers events: hooks/delivery's resident Publisher (publish
// with the event id as Nats-Msg-Id and wait for the ack, or spool durably
// while NATS cannot take it).
type Publisher interface {
	Publish(ctx context.Context, ev *eventbus.Event) delivery.Result
}

// DeadLetterer stores dead letters.
type DeadLetterer interface {
	// DeadLetter returns once the dead-letter stream stored dl under
	// subject with the dedup id id.
	DeadLetter(ctx context.Context, subject, id string, dl *worker.DeadLetter) error
}

// JetStream is the DeadLetterer over a JetStream context.
type JetStream struct{ JS jetstream.JetStream }

// DeadLetter implements DeadLetterer.
func (p JetStream) DeadLetter(ctx context.Context, subject, id string, dl *worker.DeadLetter) error {
	b, err := json.Marshal(dl)
	if err != nil {
		return fmt.Errorf("encode dead letter: %w", err)
	}
	m := nats.NewMsg(subject)
	m.Data = b
	m.Header.Set(worker.HeaderWorker, dl.Worker)
	m.Header.Set(worker.HeaderReason, dl.Reason)
	if _, err := p.JS.PublishMsg(ctx, m, jetstream.WithMsgID(id), jetstream.WithExpectStream(eventbus.StreamDLQ)); err != nil {
		return fmt.Errorf("dead-letter to %s: %w", eventbus.StreamDLQ, err)
	}
	return nil
}

// DLQWorker is the worker name of the bridge's dead letters.
const DLQWorker = "bridge-openstack"

// ReasonPoison is the reason of a notification that cannot be decoded.
const ReasonPoison = "invalid notification"

// deadLetterOf builds the dead letter of a poison message: its subject,
// its dedup id (the same message redelivered is stored once) and the letter.
func deadLetterOf(cloud, vmid, routingKey string, body []byte, cause error) (string, string, *worker.DeadLetter) {
	if !eventbus.ValidToken(vmid) {
		vmid = "_"
	}
	sum := sha256.Sum256(body)
	dl := &worker.DeadLetter{
		Worker: DLQWorker, Reason: ReasonPoison, Error: cause.Error(),
		Event:    redacted(body),
		Subject:  "amqp:" + routingKey,
		FailedAt: time.Now().UTC(), Deliveries: 1,
	}
	return worker.DLQSubject(DLQWorker, cloud, vmid), "dlq-" + DLQWorker + "-" + hex.EncodeToString(sum[:16]), dl
}

// redacted is what a dead letter keeps of a body: the JSON without the
// message context, or only its size and hash when it is not JSON.
func redacted(body []byte) json.RawMessage {
	if r := openstack.Redact(body); r != nil {
		return r
	}
	sum := sha256.Sum256(body)
	b, _ := json.Marshal(map[string]any{"unreadable_body": map[string]any{"bytes": len(body), "sha256": hex.EncodeToString(sum[:])}})
	return b
}
