package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// scan calls fn with every current value of kv whose key matches filter,
// in one ordered pass (a watch of the last value per key: a 10,000-VM cloud
// is one stream of messages, not 10,000 requests).
func scan(ctx context.Context, kv jetstream.KeyValue, filter string, fn func(key string, value []byte, rev uint64) error) error {
	w, err := kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("read bucket %s: %w", kv.Bucket(), err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("read bucket %s: watch closed", kv.Bucket())
			}
			if e == nil { // every current value was delivered
				return nil
			}
			if err := fn(e.Key(), e.Value(), e.Revision()); err != nil {
				return err
			}
		}
	}
}

// knownVMs returns the snapshots vmglue holds for a cloud (the KV bucket
// VMGLUE_VMS the workers merge every event into), by VM id.
func knownVMs(ctx context.Context, kv jetstream.KeyValue, cloud string) (map[string]*eventbus.VM, error) {
	out := map[string]*eventbus.VM{}
	err := scan(ctx, kv, cloud+".*", func(key string, value []byte, _ uint64) error {
		var vm eventbus.VM
		if err := json.Unmarshal(value, &vm); err != nil {
			return fmt.Errorf("decode snapshot %s: %w", key, err)
		}
		out[vm.ID] = &vm
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("known vms of %s: %w", cloud, err)
	}
	return out, nil
}

// absence is how many consecutive successful sweeps a known VM was missing
// from, and since when: the value of its key in VMGLUE_SWEEP.
type absence struct {
	Sweeps int       `json:"missing_sweeps"`
	Since  time.Time `json:"since"`
	rev    uint64
}

// absences is the bucket VMGLUE_SWEEP.
type absences struct{ kv jetstream.KeyValue }

func (a absences) load(ctx context.Context, cloud string) (map[string]*absence, error) {
	out := map[string]*absence{}
	err := scan(ctx, a.kv, cloud+".*", func(key string, value []byte, rev uint64) error {
		var r absence
		if err := json.Unmarshal(value, &r); err != nil {
			return fmt.Errorf("decode %s: %w", key, err)
		}
		r.rev = rev
		out[key[len(cloud)+1:]] = &r
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("missing vms of %s: %w", cloud, err)
	}
	return out, nil
}

// store records r for the VM, compare-and-set against what load read: two
// sweeps of the same cloud at once count one absence, not two.
func (a absences) store(ctx context.Context, key string, r *absence) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if r.rev == 0 {
		_, err = a.kv.Create(ctx, key, b)
	} else {
		_, err = a.kv.Update(ctx, key, b, r.rev)
	}
	if err != nil && !worker.IsCASConflict(err) {
		return fmt.Errorf("record absence of %s: %w", key, err)
	}
	return nil
}

// clear forgets the VM's absence (it is listed again, or was deleted).
func (a absences) clear(ctx context.Context, key string) error {
	if err := a.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("clear absence of %s: %w", key, err)
	}
	return nil
}
