package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
)

// Snapshots is the store of the newest known snapshot of every VM: the KV
// bucket VMGLUE_VMS, key "<cloud>.<vmid>". Every worker merges each event it
// sees into it and converges to what it holds, so the order in which events
// arrive does not matter.
//
// The rules of Merge, eventbus.Compare's total order plus a memory:
//   - A deleted snapshot is terminal: nothing that is not deleted replaces
//     it. A cloud that reuses a VM id (OpenNebula after a database reset)
//     therefore needs the old key removed by the operator; vmglue does not
//     guess from creation times.
//   - A snapshot replaces the stored one only when eventbus.Compare finds
//     it newer: Version (Seq, Changed, Observed, Seen), then the content
//     digest as a deterministic tie-break. Every worker merges every event
//     into the one bucket, in whatever order it sees them, and they all
//     end on the same snapshot.
//   - A late copy loses: the record keeps the Observations (content and
//     transition, see eventbus.VM.Observation) of the last recentDigests
//     snapshots it replaced, and an incoming snapshot with one of them is
//     a copy of an observation already superseded (a spooled event flushed
//     after the stream's duplicate window, a retried hook, a second source
//     reporting the same change later, with a later Seen), so merging A,
//     B, A leaves B.
//   - A genuine return is not a copy: a VM back in RUNNING after a failed
//     shutdown has the content of the RUNNING before it but another
//     transition (from SHUTDOWN, not from BOOT), so merging A, B, A' (A's
//     content, a later Seen) leaves A'; a late copy of B then still loses.
//     A copy of the stored observation never replaces it. A newer snapshot
//     with the stored content but another transition does (nothing to
//     converge, but its Seen now orders what comes): HEM ran B's hook
//     before A”s, A' arrived first, so B must lose when it arrives.
type Snapshots struct {
	kv jetstream.KeyValue
}

// maxCAS bounds the compare-and-set retries of one Merge.
const maxCAS = 16

// recentDigests is how many Observations of replaced snapshots a record
// keeps (about 25 bytes each).
const recentDigests = 16

// record is the stored value: the snapshot, and the Observations of the
// snapshots it replaced, newest last (a snapshot without a transition has
// its Digest for Observation, so records written before transitions read
// the same). Readers that decode an eventbus.VM
// ignore the extra field.
type record struct {
	eventbus.VM
	Replaced []string `json:"replaced_digests,omitempty"`
}

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
	r, rev, err := s.get(ctx, key)
	if r == nil {
		return nil, rev, err
	}
	return &r.VM, rev, nil
}

func (s *Snapshots) get(ctx context.Context, key string) (*record, uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if eventbus.IsNoKey(err) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("get snapshot %s: %w", key, err)
	}
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, 0, fmt.Errorf("decode snapshot %s: %w", key, err)
	}
	return &r, e.Revision(), nil
}

// Merge stores vm if it is newer than the stored snapshot (see the rules on
// Snapshots) and returns the newest snapshot of the VM after the merge.
func (s *Snapshots) Merge(ctx context.Context, vm *eventbus.VM) (*eventbus.VM, error) {
	out, _, err := s.merge(ctx, vm)
	return out, err
}

// merge is Merge, and reports whether vm is the first snapshot of its VM
// (the key did not exist and this call created it).
func (s *Snapshots) merge(ctx context.Context, vm *eventbus.VM) (newest *eventbus.VM, first bool, err error) {
	key := vm.Key()
	for range maxCAS {
		cur, rev, err := s.get(ctx, key)
		if err != nil {
			return nil, false, err
		}
		if cur != nil && !newer(vm, cur) {
			return &cur.VM, false, nil
		}
		next := record{VM: *vm}
		if cur != nil {
			next.Replaced = append(cur.Replaced, cur.Observation())
			next.Replaced = next.Replaced[max(0, len(next.Replaced)-recentDigests):]
		}
		in, err := json.Marshal(next)
		if err != nil {
			return nil, false, fmt.Errorf("encode snapshot %s: %w", key, err)
		}
		if cur == nil {
			_, err = s.kv.Create(ctx, key, in)
		} else {
			_, err = s.kv.Update(ctx, key, in, rev)
		}
		if err == nil {
			out := *vm
			return &out, cur == nil, nil
		}
		if !IsCASConflict(err) {
			return nil, false, fmt.Errorf("store snapshot %s: %w", key, err)
		}
		// Someone stored another snapshot meanwhile: compare again.
	}
	return nil, false, fmt.Errorf("store snapshot %s: %d concurrent updates, giving up", key, maxCAS)
}

// newer reports whether the incoming snapshot replaces the stored record:
// it is newer in eventbus.Compare's order, and neither a copy of the stored
// observation (seen again later) nor of one the record already replaced.
func newer(vm *eventbus.VM, cur *record) bool {
	if eventbus.Compare(vm, &cur.VM) <= 0 {
		return false
	}
	if vm.Deleted() && !cur.Deleted() {
		return true // terminal, whatever came before
	}
	o := vm.Observation()
	return o != cur.Observation() && !slices.Contains(cur.Replaced, o)
}

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
