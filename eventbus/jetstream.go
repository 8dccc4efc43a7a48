package eventbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ProvisionOptions size the streams and buckets. Zero values take defaults.
type ProvisionOptions struct {
	// Replicas of every stream and bucket (1 on a single server, 3 or 5 on a cluster).
	Replicas int `yaml:"replicas"`
	// DuplicateWindow drops a re-sent event with the same id (onehook retry).
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	// MaxAge is how long events stay replayable.
	MaxAge time.Duration `yaml:"max_age"`
	// DLQMaxAge is how long dead letters are kept.
	DLQMaxAge time.Duration `yaml:"dlq_max_age"`
}

// Defaults of ProvisionOptions.
const (
	DefaultDuplicateWindow = time.Hour
	DefaultMaxAge          = 30 * 24 * time.Hour
	DefaultDLQMaxAge       = 90 * 24 * time.Hour
	// LockTTL is how long a per-VM lease lives without renewal.
	LockTTL = 30 * time.Second
)

// SetDefaults fills zero values.
func (o *ProvisionOptions) SetDefaults() {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.DuplicateWindow == 0 {
		o.DuplicateWindow = DefaultDuplicateWindow
	}
	if o.MaxAge == 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.DLQMaxAge == 0 {
		o.DLQMaxAge = DefaultDLQMaxAge
	}
}

// Validate names the offending key.
func (o *ProvisionOptions) Validate() error {
	switch {
	case o.Replicas < 1 || o.Replicas > 5:
		return fmt.Errorf("nats.stream.replicas: %d, want 1 to 5", o.Replicas)
	case o.DuplicateWindow < time.Second:
		return fmt.Errorf("nats.stream.duplicate_window: %s, want at least 1s", o.DuplicateWindow)
	case o.MaxAge < o.DuplicateWindow:
		return fmt.Errorf("nats.stream.max_age: %s is shorter than the duplicate window", o.MaxAge)
	}
	return nil
}

// EventStreamConfig is the configuration of the event stream.
func EventStreamConfig(o ProvisionOptions) jetstream.StreamConfig {
	o.SetDefaults()
	return jetstream.StreamConfig{
		Name:        StreamEvents,
		Description: "vmglue VM lifecycle events (CloudEvents JSON)",
		Subjects:    []string{SubjectAll},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    o.Replicas,
		Duplicates:  o.DuplicateWindow,
		MaxAge:      o.MaxAge,
		Discard:     jetstream.DiscardOld,
	}
}

// Provision creates or updates the streams and KV buckets vmglue needs. It is
// idempotent and safe to run from every vmglue process at start-up. It
// returns ErrReplicas, saying why, when the server or cluster cannot hold
// o.Replicas.
func Provision(ctx context.Context, js jetstream.JetStream, o ProvisionOptions) error {
	_, err := ProvisionReplicas(ctx, js, o)
	return err
}

// ProvisionReplicas is Provision, and says what it found about replicas:
// an existing stream or bucket with fewer replicas than o.Replicas is
// raised to it, one with more is kept (Replicas.Warning says so, and how
// to lower it), and one replica on a cluster is a warning.
func ProvisionReplicas(ctx context.Context, js jetstream.JetStream, o ProvisionOptions) (Replicas, error) {
	o.SetDefaults()
	if err := o.Validate(); err != nil {
		return Replicas{}, err
	}
	p := newReplicaPlan(js, o.Replicas)
	for _, a := range assets(js, o) {
		if err := p.provision(ctx, js, a); err != nil {
			return Replicas{}, err
		}
	}
	return p.report(), nil
}

// assets are the streams and buckets vmglue provisions, in order.
func assets(js jetstream.JetStream, o ProvisionOptions) []asset {
	dlq := jetstream.StreamConfig{
		Name:        StreamDLQ,
		Description: "vmglue dead letters: events a worker gave up on, with the reason",
		Subjects:    []string{DLQPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		MaxAge:      o.DLQMaxAge,
	}
	var out []asset
	for _, c := range []jetstream.StreamConfig{EventStreamConfig(o), dlq} {
		out = append(out, asset{stream: c.Name, apply: func(ctx context.Context, replicas int) error {
			c.Replicas = replicas
			_, err := js.CreateOrUpdateStream(ctx, c)
			return err
		}})
	}
	// History 1: a key is one message. These buckets grow with every VM
	// ever seen (a deleted VM's snapshot stays as its tombstone), so older
	// revisions would multiply that by the number of state changes; the
	// event stream keeps the timeline (`vmglue vm`). An existing bucket with
	// more history is updated and pruned.
	buckets := []jetstream.KeyValueConfig{
		{Bucket: BucketVMs, Description: "newest snapshot of each VM", History: 1, Storage: jetstream.FileStorage},
		{Bucket: BucketApplied, Description: "what each worker applied per VM", History: 1, Storage: jetstream.FileStorage},
		{Bucket: BucketLocks, Description: "per-VM leases of the workers", History: 1, TTL: LockTTL, Storage: jetstream.FileStorage},
		{Bucket: BucketCertnames, Description: "certname -> VM keys index of the puppet worker", History: 1, Storage: jetstream.FileStorage},
		{Bucket: BucketCertBindings, Description: "certname -> the VM and public key vmglue autosign signed it for", History: 1, Storage: jetstream.FileStorage},
		{Bucket: BucketSweep, Description: "sweeps each known VM was missing from", History: 1, Storage: jetstream.FileStorage},
		{Bucket: BucketMeta, Description: "the installation's identity", History: 1, Storage: jetstream.FileStorage},
	}
	for _, b := range buckets {
		out = append(out, asset{stream: "KV_" + b.Bucket, apply: func(ctx context.Context, replicas int) error {
			b.Replicas = replicas
			_, err := js.CreateOrUpdateKeyValue(ctx, b)
			return err
		}})
	}
	return out
}

// PublishResult says what the stream did with an event.
type PublishResult struct {
	Sequence  uint64
	Duplicate bool
}

// Publish sends one event with its id as Nats-Msg-Id and waits for the
// stream's ack. A duplicate (the same id within the window) is not an error.
func Publish(ctx context.Context, js jetstream.JetStream, ev *Event) (PublishResult, error) {
	m, err := eventMsg(ev)
	if err != nil {
		return PublishResult{}, err
	}
	ack, err := js.PublishMsg(ctx, m, eventPublishOpts(ev)...)
	if err != nil {
		return PublishResult{}, fmt.Errorf("publish event %s: %w", ev.ID, err)
	}
	return PublishResult{Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// PublishAsync sends one event as Publish does, without waiting: AwaitAck
// takes its ack from the future. A connection sends its messages in order,
// so events published one after the other are stored in that order.
func PublishAsync(js jetstream.JetStream, ev *Event) (jetstream.PubAckFuture, error) {
	m, err := eventMsg(ev)
	if err != nil {
		return nil, err
	}
	f, err := js.PublishMsgAsync(m, eventPublishOpts(ev)...)
	if err != nil {
		return nil, fmt.Errorf("publish event %s: %w", ev.ID, err)
	}
	return f, nil
}

// eventMsg is the message of ev on its subject.
func eventMsg(ev *Event) (*nats.Msg, error) {
	b, err := ev.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	return &nats.Msg{Subject: ev.NATSSubject(), Data: b}, nil
}

// eventPublishOpts are the options of every publish of ev: its id as
// Nats-Msg-Id (the stream's duplicate window), and only into the event
// stream.
func eventPublishOpts(ev *Event) []jetstream.PublishOpt {
	return []jetstream.PublishOpt{jetstream.WithMsgID(ev.ID), jetstream.WithExpectStream(StreamEvents)}
}

// AwaitAck waits for the ack of the event id that PublishAsync sent, or
// until ctx is done.
func AwaitAck(ctx context.Context, f jetstream.PubAckFuture, id string) (PublishResult, error) {
	select {
	case ack := <-f.Ok():
		return PublishResult{Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
	case err := <-f.Err():
		return PublishResult{}, fmt.Errorf("publish event %s: %w", id, err)
	case <-ctx.Done():
		return PublishResult{}, fmt.Errorf("publish event %s: %w", id, ctx.Err())
	}
}

// ErrNotProvisioned is returned when the event stream does not exist.
var ErrNotProvisioned = errors.New("event stream " + StreamEvents + " does not exist: start `vmglue serve` or run it once against this NATS")
