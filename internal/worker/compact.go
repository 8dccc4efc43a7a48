package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
)

// A deleted VM's snapshot stays in VMGLUE_VMS as its tombstone, which
// keeps a late or replayed event from bringing the VM back, until
// ForgetTombstones removes it (runtime.tombstone_ttl, longer than the
// event stream keeps the VM's events). Its full
// content (NICs, attributes) and the workers' empty records in
// VMGLUE_APPLIED are only useful for a while (`vmglue vm`). Compact keeps
// the tombstone and drops the rest, so what stays per deleted VM is a few
// hundred bytes.

// CompactStats counts what one Compact changed.
type CompactStats struct {
	Tombstones int // deleted snapshots shrunk to their tombstone
	Records    int // empty registry records of deleted VMs removed
	Kept       int // deleted VMs left as they are: a worker still records objects
	Markers    int // delete markers of forgotten certnames removed
}

// Compact shrinks every VM deleted before cutoff (its snapshot stored
// before cutoff) whose workers all record nothing any more: their empty
// registry records are removed and the snapshot becomes its tombstone (see
// Tombstone). A VM whose delete has not been applied everywhere (a record
// with applied or pending objects: a retry, a dead letter) is left whole,
// since a worker may still need its snapshot. Every change is a
// compare-and-set, so Compact may run beside converges, and in several
// processes at once.
func Compact(ctx context.Context, js jetstream.JetStream, cutoff time.Time, log zerolog.Logger) (CompactStats, error) {
	var st CompactStats
	vms, err := js.KeyValue(ctx, eventbus.BucketVMs)
	if err != nil {
		return st, fmt.Errorf("open bucket %s: %w", eventbus.BucketVMs, err)
	}
	applied, err := js.KeyValue(ctx, eventbus.BucketApplied)
	if err != nil {
		return st, fmt.Errorf("open bucket %s: %w", eventbus.BucketApplied, err)
	}
	// The registry keys "<worker>.<cloud>.<vmid>" by VM, read once per run.
	records := map[string][]string{}
	err = listKeys(ctx, applied, nil, func(key string) error {
		if _, vmKey, ok := strings.Cut(key, "."); ok {
			records[vmKey] = append(records[vmKey], key)
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("compact: list %s: %w", eventbus.BucketApplied, err)
	}
	err = eachEntry(ctx, vms, func(key string, e jetstream.KeyValueEntry) error {
		var full record
		if json.Unmarshal(e.Value(), &full) != nil || !full.Deleted() || !e.Created().Before(cutoff) {
			return nil
		}
		tomb, err := tombstoneOf(full)
		if err != nil {
			return fmt.Errorf("encode tombstone %s: %w", key, err)
		}
		if bytes.Equal(tomb, e.Value()) && len(records[key]) == 0 {
			return nil // compacted by an earlier run
		}
		settled, removed, err := dropEmptyRecords(ctx, applied, records[key])
		st.Records += removed
		if err != nil {
			return err
		}
		if !settled {
			st.Kept++
			return nil
		}
		if bytes.Equal(tomb, e.Value()) {
			return nil
		}
		if _, err := vms.Update(ctx, key, tomb, e.Revision()); err != nil {
			if IsCASConflict(err) {
				return nil // changed meanwhile: the next run looks again
			}
			return fmt.Errorf("store tombstone %s: %w", key, err)
		}
		st.Tombstones++
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("compact: %w", err)
	}
	if st.Records > 0 {
		// The removed records' delete markers: older than the default
		// 30 minutes, from an earlier run.
		if err := applied.PurgeDeletes(ctx); err != nil {
			return st, fmt.Errorf("compact: purge delete markers of %s: %w", eventbus.BucketApplied, err)
		}
	}
	for _, b := range []string{eventbus.BucketCertnames, eventbus.BucketCertBindings} {
		n, err := purgeMarkers(ctx, js, b, cutoff)
		st.Markers += n
		if err != nil {
			return st, fmt.Errorf("compact: %w", err)
		}
	}
	ev := log.Debug()
	if st.Tombstones+st.Records+st.Markers > 0 {
		ev = log.Info()
	}
	ev.Int("tombstones", st.Tombstones).Int("records", st.Records).Int("kept", st.Kept).Int("markers", st.Markers).
		Msg("compacted deleted vms")
	return st, nil
}

// purgeMarkers removes the delete markers of bucket created before cutoff.
// The puppet worker's certname buckets lose a key when its last VM goes
// (the certificate cleaned), and History 1 keeps one message per key: the
// marker, which no reader needs (a missing and a deleted key read the
// same), stayed for ever, one per certname the cloud ever had.
func purgeMarkers(ctx context.Context, js jetstream.JetStream, bucket string, cutoff time.Time) (int, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return 0, fmt.Errorf("open bucket %s: %w", bucket, err)
	}
	st, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return 0, fmt.Errorf("stream of bucket %s: %w", bucket, err)
	}
	var old []jetstream.KeyValueEntry
	err = eachMarker(ctx, kv, func(e jetstream.KeyValueEntry) {
		if e.Created().Before(cutoff) {
			old = append(old, e)
		}
	})
	if err != nil {
		return 0, fmt.Errorf("list delete markers of %s: %w", bucket, err)
	}
	n := 0
	for _, e := range old {
		// Up to the marker only: a key written again meanwhile keeps
		// its new value.
		err := st.Purge(ctx, jetstream.WithPurgeSubject("$KV."+bucket+"."+e.Key()), jetstream.WithPurgeSequence(e.Revision()+1))
		if err != nil {
			return n, fmt.Errorf("purge delete marker %s of %s: %w", e.Key(), bucket, err)
		}
		n++
	}
	return n, nil
}

// eachMarker calls fn with every delete marker of kv.
func eachMarker(ctx context.Context, kv jetstream.KeyValue, fn func(jetstream.KeyValueEntry)) error {
	w, err := kv.WatchAll(ctx, jetstream.MetaOnly())
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-w.Updates():
			if e == nil {
				return nil
			}
			if op := e.Operation(); op == jetstream.KeyValueDelete || op == jetstream.KeyValuePurge {
				fn(e)
			}
		}
	}
}

// eachEntry calls fn with every key of kv and its entry; a key removed
// meanwhile is skipped.
func eachEntry(ctx context.Context, kv jetstream.KeyValue, fn func(key string, e jetstream.KeyValueEntry) error) error {
	return listKeys(ctx, kv, nil, func(key string) error {
		e, err := kv.Get(ctx, key)
		if eventbus.IsNoKey(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("get %s: %w", key, err)
		}
		return fn(key, e)
	})
}

// dropEmptyRecords removes the registry records keys (of one VM, every
// worker) when all are empty. settled is false, and nothing is removed,
// when a record still has objects.
func dropEmptyRecords(ctx context.Context, applied jetstream.KeyValue, keys []string) (settled bool, removed int, err error) {
	revs := map[string]uint64{}
	for _, key := range keys {
		e, err := applied.Get(ctx, key)
		if eventbus.IsNoKey(err) {
			continue
		}
		if err != nil {
			return false, 0, fmt.Errorf("get record %s: %w", key, err)
		}
		var rec Record
		if err := json.Unmarshal(e.Value(), &rec); err != nil || len(rec.Applied) > 0 || len(rec.Pending) > 0 {
			return false, 0, nil
		}
		revs[key] = e.Revision()
	}
	for key, rev := range revs {
		if err := applied.Delete(ctx, key, jetstream.LastRevision(rev)); err != nil {
			if IsCASConflict(err) {
				return false, removed, nil // written meanwhile: the next run looks again
			}
			return false, removed, fmt.Errorf("remove record %s: %w", key, err)
		}
		removed++
	}
	return true, removed, nil
}

// tombstoneOf encodes the tombstone record of a deleted snapshot. The full
// snapshot's Observation stays known: a late copy of it must not replace
// the tombstone.
func tombstoneOf(full record) ([]byte, error) {
	t := record{VM: *Tombstone(&full.VM), Replaced: full.Replaced}
	if d := full.Observation(); d != t.Observation() && !slices.Contains(t.Replaced, d) {
		t.Replaced = append(t.Replaced, d)
	}
	return json.Marshal(t)
}

// Tombstone is what stays of a deleted VM: what identifies it, its state,
// its times (the puppet worker's ownership checks read them) and its
// Version; no NICs, labels or attributes.
func Tombstone(vm *eventbus.VM) *eventbus.VM {
	return &eventbus.VM{
		Cloud: vm.Cloud, CloudType: vm.CloudType, ID: vm.ID, Name: vm.Name,
		State: vm.State, LCMState: vm.LCMState, Kind: vm.Kind,
		NICs: []eventbus.NIC{}, Times: vm.Times, Version: vm.Version,
	}
}
