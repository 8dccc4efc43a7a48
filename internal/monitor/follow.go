package monitor

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// watchRetry is how long follow waits before it watches the bucket again
// after a watch failed (while a stream leader is elected, say).
const watchRetry = 500 * time.Millisecond

// follow keeps the files following the shared bucket until ctx ends. The
// bucket watch is an ordered consumer: after the node it lived on is lost
// it notices only when its heartbeats stop coming (many seconds), and the
// files would lag behind that long. So follow also restarts the watch
// whenever the connection is re-established: the new watch reads every
// entry again (an entry never goes back to an older revision, see
// sdFiles.set) and the files are right as soon as it has. Every write
// replaces a whole file (writeAtomic), so a reader never sees a part.
func (t *Target) follow(ctx context.Context) {
	var reconnected <-chan nats.Status
	if nc := t.store.nc; nc != nil {
		ch := nc.StatusChanged(nats.CONNECTED)
		defer nc.RemoveStatusListener(ch)
		reconnected = ch
	}
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- t.watch(wctx) }()
		var err error
		select {
		case err = <-done:
		case <-reconnected:
			t.log.Info().Msg("nats connection re-established: reading the file_sd bucket again")
			cancel()
			<-done
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
func (t *Target) watch(ctx context.Context) error {
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
			} else if job, enc, ok := strings.Cut(e.Key(), "."); ok {
				if k, err := base64.RawURLEncoding.DecodeString(enc); err == nil {
					v := string(e.Value())
					if e.Operation() != jetstream.KeyValuePut {
						v = ""
					}
					gen = max(gen, t.sd.set(job, string(k), v, e.Revision()))
				}
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
