package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
)

// ForgetTombstones removes from VMGLUE_VMS the tombstones (deleted VMs
// Compact shrank) stored before before, and their delete markers, and
// returns how many it removed. Without it the bucket, and every scan of
// it (autosign's fallback, reconcile), grows with every VM ever deleted.
// A VM whose tombstone is gone is unknown again: an event of it would be
// stored as new. So before must be older than the event stream keeps
// events (serve: runtime.tombstone_ttl, at least nats.stream.max_age):
// then no event of the VM can still be replayed. A snapshot that is not
// exactly a tombstone (a live VM, a deleted one not yet compacted) is
// never removed; a change meanwhile wins (compare-and-set).
func ForgetTombstones(ctx context.Context, js jetstream.JetStream, before time.Time, log zerolog.Logger) (int, error) {
	vms, err := js.KeyValue(ctx, eventbus.BucketVMs)
	if err != nil {
		return 0, fmt.Errorf("open bucket %s: %w", eventbus.BucketVMs, err)
	}
	n := 0
	err = eachEntry(ctx, vms, func(key string, e jetstream.KeyValueEntry) error {
		var r record
		if !e.Created().Before(before) || json.Unmarshal(e.Value(), &r) != nil || !r.Deleted() {
			return nil
		}
		if tomb, err := tombstoneOf(r); err != nil || !bytes.Equal(tomb, e.Value()) {
			return nil // not compacted yet
		}
		if err := vms.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil {
			if IsCASConflict(err) {
				return nil
			}
			return fmt.Errorf("remove tombstone %s: %w", key, err)
		}
		n++
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("forget tombstones: %w", err)
	}
	if n > 0 {
		// Only ForgetTombstones deletes in this bucket: every
		// marker can go at once.
		if err := vms.PurgeDeletes(ctx, jetstream.DeleteMarkersOlderThan(-1)); err != nil {
			return n, fmt.Errorf("forget tombstones: purge delete markers: %w", err)
		}
		log.Info().Int("tombstones", n).Msg("forgot old tombstones")
	}
	return n, nil
}
