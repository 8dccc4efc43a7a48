package sweep_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/sweep"
)

// TestTransitionIsNoDifference: the transition a snapshot came by
// (PREV_STATE, PREV_LCM_STATE) is not content. vmglue's snapshots stored
// without it (by a vmglue from before transitions, or a source whose body
// lacks PREV_*) and the cloud's documents with it are the same to the
// sweep: nothing is published.
func TestTransitionIsNoDifference(t *testing.T) {
	e := newEnv(t)
	e.loadLive()
	if _, err := e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := e.js.KeyValue(ctx, eventbus.BucketVMs)
	if err != nil {
		t.Fatal(err)
	}
	stripped := 0
	for _, id := range liveIDs {
		key := cloud + "." + id
		entry, err := kv.Get(ctx, key)
		if err != nil {
			t.Fatalf("snapshot %s: %v", key, err)
		}
		var rec map[string]any
		if err := json.Unmarshal(entry.Value(), &rec); err != nil {
			t.Fatal(err)
		}
		if rec["prev_state"] == nil {
			continue
		}
		delete(rec, "prev_state")
		delete(rec, "prev_lcm_state")
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, key, b); err != nil {
			t.Fatal(err)
		}
		stripped++
	}
	if stripped == 0 {
		t.Fatal("no listed VM had a transition: the test proves nothing")
	}
	r, err := e.run(e.sweeper(sweep.Options{}, nil), sweep.Mode{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Published() != 0 || r.Listed != len(liveIDs) {
		t.Fatalf("sweep after %d snapshots lost their transition: %+v; want nothing published", stripped, r)
	}
}
