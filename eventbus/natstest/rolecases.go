package natstest

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
)

// roleCase is one thing a client may or may not do, and which roles may
// (serve may do everything). do returns an error when the server refused,
// or the client observed no effect.
type roleCase struct {
	name    string
	allowed map[string]bool
	do      func(ctx context.Context, c *roleClient) error
}

var (
	hookOnly = map[string]bool{eventbus.RoleHook: true, eventbus.RoleOps: true}
	opsOnly  = map[string]bool{eventbus.RoleOps: true}
	// hookOnlyNotOps: what only a source does.
	hookOnlyNotOps = map[string]bool{eventbus.RoleHook: true}
	autosignOnly   = map[string]bool{eventbus.RoleAutosign: true}
	opsAutosign    = map[string]bool{eventbus.RoleOps: true, eventbus.RoleAutosign: true}
	nobody         = map[string]bool{}
)

// forgedDelete is a vm.deleted of a VM that the hook may publish: the
// hook's credential is the cloud's (any VM, any kind).
func forgedDelete() *eventbus.Event {
	vm := eventbus.VM{Cloud: "one", ID: "7", Name: "web7", Kind: eventbus.KindDeleted, State: "DONE",
		Version: eventbus.Version{Seq: 3, Seen: time.Now().UnixNano()}}
	ev, err := eventbus.NewEvent(vm)
	if err != nil {
		panic(err)
	}
	return &ev
}

func kvPut(bucket string) func(ctx context.Context, c *roleClient) error {
	return func(ctx context.Context, c *roleClient) error {
		kv, err := c.js.KeyValue(ctx, bucket)
		if err != nil {
			// A role that cannot open the bucket writes to its subject.
			_, err = c.js.Publish(ctx, "$KV."+bucket+".dns.one.7", []byte(`{"forged":true}`))
			return err
		}
		_, err = kv.Put(ctx, "dns.one.7", []byte(`{"forged":true}`))
		return err
	}
}

func kvGet(bucket, key string) func(ctx context.Context, c *roleClient) error {
	return func(ctx context.Context, c *roleClient) error {
		kv, err := c.js.KeyValue(ctx, bucket)
		if err != nil {
			return err
		}
		_, err = kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil // read, and not there
		}
		return err
	}
}

var roleCases = []roleCase{
	{"publish a vm event (a forged vm.deleted)", hookOnly, func(ctx context.Context, c *roleClient) error {
		_, err := eventbus.Publish(ctx, c.js, forgedDelete())
		return err
	}},
	{"publish a source's dead letter", hookOnlyNotOps, func(ctx context.Context, c *roleClient) error {
		_, err := c.js.Publish(ctx, eventbus.DLQPrefix+".bridge-openstack.os._", []byte("{}"))
		return err
	}},
	{"publish a worker's dead letter", nobody, func(ctx context.Context, c *roleClient) error {
		_, err := c.js.Publish(ctx, eventbus.DLQPrefix+".dns.one.7", []byte("{}"))
		return err
	}},
	{"subscribe to the events", nobody, func(ctx context.Context, c *roleClient) error {
		sub, err := c.nc.SubscribeSync(eventbus.SubjectAll)
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
		if err := c.nc.FlushWithContext(ctx); err != nil {
			return err
		}
		// A refused subscription says so on its next read.
		if _, err := sub.NextMsg(50 * time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
			return err
		}
		return nil
	}},
	{"read the event stream", opsOnly, func(ctx context.Context, c *roleClient) error {
		cons, err := c.js.OrderedConsumer(ctx, eventbus.StreamEvents, jetstream.OrderedConsumerConfig{})
		if err != nil {
			return err
		}
		// On a cluster the new consumer's interest reaches the other
		// servers a moment after its creation: until then a fetch there
		// finds no responders (vmglue's readers, cons.Messages, retry).
		for {
			_, err = cons.Next(jetstream.FetchMaxWait(time.Second))
			if !errors.Is(err, nats.ErrNoResponders) || ctx.Err() != nil {
				return err
			}
			time.Sleep(10 * time.Millisecond) // a retry pause, not a wait for an event
		}
	}},
	{"read " + eventbus.BucketApplied, opsOnly, kvGet(eventbus.BucketApplied, "dns.one.7")},
	{"read " + eventbus.BucketVMs, opsAutosign, kvGet(eventbus.BucketVMs, "one.7")},
	{"read " + eventbus.BucketCertnames, opsAutosign, kvGet(eventbus.BucketCertnames, "web7.cloud.test")},
	{"write " + eventbus.BucketCertBindings, autosignOnly, kvPut(eventbus.BucketCertBindings)},
	{"write " + eventbus.BucketSweep, opsOnly, kvPut(eventbus.BucketSweep)},
	{"rewrite " + eventbus.BucketApplied, nobody, kvPut(eventbus.BucketApplied)},
	{"rewrite " + eventbus.BucketVMs, nobody, kvPut(eventbus.BucketVMs)},
	{"delete the event stream", nobody, func(ctx context.Context, c *roleClient) error {
		return c.js.DeleteStream(ctx, eventbus.StreamEvents)
	}},
	{"purge the event stream", nobody, func(ctx context.Context, c *roleClient) error {
		st, err := c.js.Stream(ctx, eventbus.StreamEvents)
		if err != nil {
			_, err = c.nc.Request("$JS.API.STREAM.PURGE."+eventbus.StreamEvents, nil, time.Second)
			return err
		}
		return st.Purge(ctx)
	}},
	{"create a stream", nobody, func(ctx context.Context, c *roleClient) error {
		_, err := c.js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"vmglue.vm.one.>"}})
		return err
	}},
	// The ordered consumers of the ops commands delete themselves.
	{"delete a consumer", opsOnly, func(ctx context.Context, c *roleClient) error {
		return c.js.DeleteConsumer(ctx, eventbus.StreamEvents, "vmglue-dns")
	}},
}
