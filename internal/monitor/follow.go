package monitor

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// watchRetry is how long follow waits before it watches the bucket again
// after a watch failed (while a stream leader is elected, say).
const watchRetry = 500 * time.Millisecond

// watchCheck is how often follow checks that its watch keeps up with the
// bucket: one stream info request per serve process.
var watchCheck = 2 * time.Second

// stalled says whether a watch stalled: at the last check the bucket held
// revision due and the watch had delivered up to then; it has delivered
// nothing since (now), and not due. A watch still loading a big bucket
// moves, so it is not cut.
func stalled(due, then, now uint64) bool { return due > 0 && now < due && now == then }

// newest is the bucket's newest revision (its stream's last sequence), 0
// when it cannot be read: the check then waits for the next tick.
func (t *Target) newest(ctx context.Context) uint64 {
	rctx, cancel := context.WithTimeout(ctx, watchCheck)
	defer cancel()
	st, err := t.store.kv.Status(rctx)
	if err != nil {
		return 0
	}
	js, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return 0
	}
	return js.StreamInfo().State.LastSeq
}

// follow keeps the files following the shared bucket until ctx ends. The
// bucket watch is an ordered consumer: after the node it lived on is lost
// it notices only when its heartbeats stop coming (many seconds), and the
// files would lag behind that long. So follow also restarts the watch
// whenever the connection is re-established: the new watch reads every
// entry again (an entry never goes back to an older revision, see
// sdFiles.set) and the files are right as soon as it has. A process whose
// own connection stayed up is not told when the watch's consumer went with
// a node, so follow also restarts a watch that stalled: one that has not
// delivered, after watchCheck, the bucket's newest revision of watchCheck
// before (stalled). Every write replaces a whole file (writeAtomic), so a
// reader never sees a part.
func (t *Target) follow(ctx context.Context) {
	var reconnected <-chan nats.Status
	if nc := t.store.nc; nc != nil {
		ch := nc.StatusChanged(nats.CONNECTED)
		defer nc.RemoveStatusListener(ch)
		reconnected = ch
	}
	check := time.NewTicker(watchCheck)
	defer check.Stop()
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		var seen atomic.Uint64 // the newest revision this watch delivered
		start := t.newest(ctx) // in the watch's initial values
		go func() { done <- t.watch(wctx, start, &seen) }()
		var err error
		var due, then uint64 // the bucket's newest revision and seen, at the last check
	watching:
		for {
			select {
			case err = <-done:
				break watching
			case <-reconnected:
				t.log.Info().Msg("nats connection re-established: reading the file_sd bucket again")
				cancel()
				<-done
				break watching
			case <-check.C:
				if now := seen.Load(); stalled(due, then, now) {
					t.log.Warn().Uint64("delivered", now).Uint64("bucket", due).
						Msg("file_sd bucket watch stalled: reading the bucket again")
					cancel()
					<-done
					break watching
				}
				due, then = t.newest(ctx), seen.Load()
			}
		}
		cancel()
		if err != nil && ctx.Err() == nil {
			t.log.Warn().Err(err).Msg("file_sd bucket watch ended; restarting")
			select {
			case <-ctx.Done():
			case <-time.After(watchRetry):
			}
		}
	}
}

// watch renders the files from the bucket's entries, the ones there and
// those that come, until ctx ends (nil) or the watch fails.
func (t *Target) watch(ctx context.Context, start uint64, seen *atomic.Uint64) error {
	w, err := t.store.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", BucketFileSD, err)
	}
	defer func() { _ = w.Stop() }()
	gen := uint64(1) // the files' first write
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watcher closed")
			}
			if e == nil { // the initial values are in
				t.loadOnce.Do(func() { close(t.loaded) })
				seen.Store(max(seen.Load(), start))
			} else if job, enc, ok := strings.Cut(e.Key(), "."); ok {
				if k, err := base64.RawURLEncoding.DecodeString(enc); err == nil {
					v := string(e.Value())
					if e.Operation() != jetstream.KeyValuePut {
						v = ""
					}
					gen = max(gen, t.sd.set(job, string(k), v, e.Revision()))
				}
			}
			if e != nil {
				seen.Store(max(seen.Load(), e.Revision()))
			}
			if len(w.Updates()) > 0 || !t.isLoaded() {
				continue // write once for a burst
			}
			if err := t.sd.flush(gen); err != nil {
				t.log.Error().Err(err).Msg("write file_sd files")
			}
		}
	}
}
