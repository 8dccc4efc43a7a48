package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
)

// Snapshots is the store of the newest known snapshot of every VM: the KV
// bucket VMGLUE_VMS, key "<cloud>.<vmid>". Every worker merges each event it
// sees into it and converges to what it holds, so the order in which events
// arrive does not matter.
//
// The rules of Merge:
//   - A deleted snapshot is terminal: nothing that is not deleted replaces
//     it. A cloud that reuses a VM id (OpenNebula after a database reset)
//     therefore needs the old key removed by the operator; vmglue does not
//     guess from creation times.
//   - A snapshot with an older Version never replaces a newer one.
//   - Two snapshots with an equal Version but different content: the
//     incoming one wins. The source changed something without a new
//     timestamp (a periodic sweep seeing a hotplugged NIC at the same
//     LAST_POLL), and the newest observation is the best guess.
type Snapshots struct {
	kv jetstream.KeyValue
}

// maxCAS bounds the compare-and-set retries of one Merge.
const maxCAS = 16

// OpenSnapshots opens the provisioned bucket VMGLUE_VMS.
func OpenSnapshots(ctx context.Context, js jetstream.JetStream) (*Snapshots, error) {
	kv, err := js.KeyValue(ctx, eventbus.BucketVMs)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", eventbus.BucketVMs, err)
	}
	return &Snapshots{kv: kv}, nil
}

// Get returns the stored snapshot of key "<cloud>.<vmid>" and its revision,
// or nil and 0 when the VM was never seen.
func (s *Snapshots) Get(ctx context.Context, key string) (*eventbus.VM, uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("get snapshot %s: %w", key, err)
	}
	var vm eventbus.VM
	if err := json.Unmarshal(e.Value(), &vm); err != nil {
		return nil, 0, fmt.Errorf("decode snapshot %s: %w", key, err)
	}
	return &vm, e.Revision(), nil
}

// Merge stores vm if it is newer than the stored snapshot (see the rules on
// Snapshots) and returns the newest snapshot of the VM after the merge.
func (s *Snapshots) Merge(ctx context.Context, vm *eventbus.VM) (*eventbus.VM, error) {
	key := vm.Key()
	in, err := json.Marshal(vm)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot %s: %w", key, err)
	}
	for range maxCAS {
		cur, rev, err := s.Get(ctx, key)
		if err != nil {
			return nil, err
		}
		if cur != nil && !newer(vm, cur, in) {
			return cur, nil
		}
		if cur == nil {
			_, err = s.kv.Create(ctx, key, in)
		} else {
			_, err = s.kv.Update(ctx, key, in, rev)
		}
		if err == nil {
			out := *vm
			return &out, nil
		}
		if !IsCASConflict(err) {
			return nil, fmt.Errorf("store snapshot %s: %w", key, err)
		}
		// Someone stored another snapshot meanwhile: compare again.
	}
	return nil, fmt.Errorf("store snapshot %s: %d concurrent updates, giving up", key, maxCAS)
}

// newer reports whether the incoming snapshot (encoded as in) replaces cur.
func newer(vm, cur *eventbus.VM, in []byte) bool {
	switch d, c := isDeleted(vm), isDeleted(cur); {
	case c && !d:
		return false
	case d && !c: // whatever its version says (a source may not set Deleted)
		return true
	}
	switch vm.Version.Compare(cur.Version) {
	case 1:
		return true
	case -1:
		return false
	}
	old, err := json.Marshal(cur)
	return err != nil || !bytes.Equal(old, in)
}

func isDeleted(vm *eventbus.VM) bool { return vm.Deleted() || vm.Version.Deleted }

// List returns every stored snapshot, keyed "<cloud>.<vmid>".
func (s *Snapshots) List(ctx context.Context) (map[string]*eventbus.VM, error) {
	out := map[string]*eventbus.VM{}
	err := listKeys(ctx, s.kv, nil, func(key string) error {
		vm, _, err := s.Get(ctx, key)
		if vm != nil {
			out[key] = vm
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	return out, nil
}

// listKeys calls fn for every key of kv matching filters (all when none).
func listKeys(ctx context.Context, kv jetstream.KeyValue, filters []string, fn func(string) error) error {
	var (
		l   jetstream.KeyLister
		err error
	)
	if len(filters) == 0 {
		l, err = kv.ListKeys(ctx)
	} else {
		l, err = kv.ListKeysFiltered(ctx, filters...)
	}
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer l.Stop()
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	for _, k := range keys {
		if err := fn(k); err != nil {
			return err
		}
	}
	return nil
}

// IsCASConflict reports whether a KV Create, Update or Delete with an
// expected revision lost a race.
func IsCASConflict(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		return true
	}
	return errors.Is(err, jetstream.ErrKeyExists)
}
