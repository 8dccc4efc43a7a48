package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
)

// Record is what one worker applied for one VM: the value of key
// "<worker>.<cloud>.<vmid>" in the KV bucket VMGLUE_APPLIED.
type Record struct {
	// Applied are the objects in place in the target, created by vmglue.
	Applied Objects `json:"applied"`
	// Pending are the objects an Apply was about to put in place (its want,
	// plus what an earlier interrupted Apply left unverified). They are
	// written before Apply and cleared once Apply confirms them, so a record
	// with pending objects means an Apply stopped in the middle (crash,
	// panic) or failed transiently: those objects may exist and are ours.
	Pending Objects `json:"pending,omitempty"`
	// EventID is the event whose converge wrote the record.
	EventID string `json:"event_id"`
	// Updated is when the record was written.
	Updated time.Time `json:"updated"`
	// Error is the error of the last Apply, empty after a success.
	Error string `json:"error,omitempty"`
	// Waiting is set while the worker waits (or waited) for other workers
	// to finish with the VM first (Runner.After): the start of the wait
	// survives a restart. A successful Apply, or a converge with nothing
	// to do, clears it; a failed one keeps it for the retry.
	Waiting *Waiting `json:"waiting,omitempty"`
}

// Have returns what the worker must treat as its own: applied objects and
// pending ones (a pending value overrides an applied one).
func (r *Record) Have() Objects {
	if r == nil {
		return Objects{}
	}
	h := Objects{}
	maps.Copy(h, r.Applied)
	maps.Copy(h, r.Pending)
	return h
}

// applied returns a copy of the applied objects (never nil).
func (r *Record) applied() Objects {
	if r == nil {
		return Objects{}
	}
	a := Objects{}
	maps.Copy(a, r.Applied)
	return a
}

// unverified returns the pending objects that differ from the applied ones:
// those an interrupted Apply may or may not have put in place (nil if none).
func (r *Record) unverified() Objects {
	if r == nil || len(r.Pending) == 0 {
		return nil
	}
	u := Objects{}
	for k, v := range r.Pending {
		if old, ok := r.Applied[k]; !ok || old != v {
			u[k] = v
		}
	}
	if len(u) == 0 {
		return nil
	}
	return u
}

// Registry is the ownership registry of one worker: what it applied per VM.
// `vmglue vm` and `vmglue status` read it; only the runtime writes it.
type Registry struct {
	kv     jetstream.KeyValue
	worker string
}

// OpenRegistry opens the registry of the named worker in the provisioned
// bucket VMGLUE_APPLIED.
func OpenRegistry(ctx context.Context, js jetstream.JetStream, worker string) (*Registry, error) {
	kv, err := js.KeyValue(ctx, eventbus.BucketApplied)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", eventbus.BucketApplied, err)
	}
	return &Registry{kv: kv, worker: worker}, nil
}

// Worker returns the worker name of the registry.
func (r *Registry) Worker() string { return r.worker }

// Key returns the KV key of a VM's record: "<worker>.<cloud>.<vmid>".
func (r *Registry) Key(vmKey string) string { return r.worker + "." + vmKey }

// Get returns the record of a VM ("<cloud>.<vmid>") and its revision, or nil
// and 0 when the worker never applied anything for it.
func (r *Registry) Get(ctx context.Context, vmKey string) (*Record, uint64, error) {
	e, err := r.kv.Get(ctx, r.Key(vmKey))
	if eventbus.IsNoKey(err) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("get %s record of %s: %w", r.worker, vmKey, err)
	}
	var rec Record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, 0, fmt.Errorf("decode %s record of %s: %w", r.worker, vmKey, err)
	}
	return &rec, e.Revision(), nil
}

// List returns every record of the worker, keyed "<cloud>.<vmid>".
func (r *Registry) List(ctx context.Context) (map[string]*Record, error) {
	out := map[string]*Record{}
	prefix := r.worker + "."
	err := listKeys(ctx, r.kv, []string{prefix + ">"}, func(key string) error {
		vmKey := strings.TrimPrefix(key, prefix)
		rec, _, err := r.Get(ctx, vmKey)
		if rec != nil {
			out[vmKey] = rec
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list %s records: %w", r.worker, err)
	}
	return out, nil
}

// errRegistryRace is returned when a record changed since it was read: another
// instance converged the VM (its lease expired under us). The event is retried.
var errRegistryRace = errors.New("registry record changed concurrently")

// put writes a record if its revision is still rev (0: if it does not exist)
// and returns the new revision.
func (r *Registry) put(ctx context.Context, vmKey string, rec *Record, rev uint64) (uint64, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("encode %s record of %s: %w", r.worker, vmKey, err)
	}
	if rev == 0 {
		rev, err = r.kv.Create(ctx, r.Key(vmKey), b)
	} else {
		rev, err = r.kv.Update(ctx, r.Key(vmKey), b, rev)
	}
	if IsCASConflict(err) {
		return 0, fmt.Errorf("write %s record of %s: %w", r.worker, vmKey, errRegistryRace)
	}
	if err != nil {
		return 0, fmt.Errorf("write %s record of %s: %w", r.worker, vmKey, err)
	}
	return rev, nil
}
