package spool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
)

func TestFlushMissingDirCreatesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	r := &recorder{}
	sent, err := New(dir).Flush(context.Background(), r.publish)
	if err != nil || sent != 0 {
		t.Fatalf("Flush = %d, %v; want 0, nil", sent, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Flush created %s (stat: %v)", dir, err)
	}
}

// The flush lock is on the directory: Flush leaves no file behind that a
// root-run `vmglue spool flush` would own and oneadmin's hooks could not
// open.
func TestFlushCreatesNoLockFile(t *testing.T) {
	s := New(t.TempDir())
	if _, err := s.Write(event(t, 1)); err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	if sent, err := s.Flush(context.Background(), r.publish); err != nil || sent != 1 {
		t.Fatalf("Flush = %d, %v; want 1, nil", sent, err)
	}
	des, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		t.Errorf("left in the spool: %s", de.Name())
	}
}

// TestFlushBusy holds the lock the way a second process would (its own open
// file description) and checks that Flush skips.
func TestFlushBusy(t *testing.T) {
	s := New(t.TempDir())
	if _, err := s.Write(event(t, 1)); err != nil {
		t.Fatal(err)
	}
	unlock, err := s.lock()
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	if sent, err := s.Flush(context.Background(), r.publish); !errors.Is(err, ErrBusy) || sent != 0 {
		t.Fatalf("Flush while locked = %d, %v; want 0, ErrBusy", sent, err)
	}
	unlock()
	if sent, err := s.Flush(context.Background(), r.publish); err != nil || sent != 1 {
		t.Fatalf("Flush after unlock = %d, %v; want 1, nil", sent, err)
	}
}

// TestFlushConcurrent runs several flushers at once: every event is sent at
// least once, none is lost, nothing crashes, and the spool ends empty.
func TestFlushConcurrent(t *testing.T) {
	s := New(t.TempDir())
	const n = 50
	for i := range n {
		if _, err := s.Write(event(t, i)); err != nil {
			t.Fatal(err)
		}
	}
	r := &recorder{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			// Each goroutine retries until it is not busy, like hooks
			// that keep firing.
			for {
				_, err := New(s.dir).Flush(context.Background(), r.publish)
				if !errors.Is(err, ErrBusy) {
					if err != nil {
						t.Error(err)
					}
					return
				}
				if left, _ := s.List(); len(left) == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	if left, _ := s.List(); len(left) != 0 {
		t.Fatalf("%d events left", len(left))
	}
	seen := map[string]int{}
	for _, id := range r.ids {
		seen[id]++
	}
	if len(seen) != n {
		t.Errorf("%d distinct events sent, want %d", len(seen), n)
	}
	if len(r.ids) != n {
		t.Errorf("%d sends for %d events: the lock let two flushers send the same file", len(r.ids), n)
	}
}

func TestFlushContextCancelled(t *testing.T) {
	s := New(t.TempDir())
	for i := range 3 {
		if _, err := s.Write(event(t, i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	publish := func(context.Context, *eventbus.Event) error {
		calls++
		cancel() // the signal arrives after the first ack
		return nil
	}
	sent, err := s.Flush(ctx, publish)
	if !errors.Is(err, context.Canceled) || sent != 1 || calls != 1 {
		t.Fatalf("Flush = %d, %v after %d calls; want 1, context.Canceled after 1", sent, err, calls)
	}
	if left, _ := s.List(); len(left) != 2 {
		t.Errorf("%d left, want 2", len(left))
	}
}

func TestFlushRemovesStaleTemp(t *testing.T) {
	s := New(t.TempDir())
	if _, err := s.Write(event(t, 1)); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(s.dir, tmpPrefix+"stale")
	fresh := filepath.Join(s.dir, tmpPrefix+"fresh")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleTmp)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	if _, err := s.Flush(context.Background(), r.publish); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temp file kept (stat: %v)", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temp file (a writer at work) removed: %v", err)
	}
}

func TestWriteUnwritable(t *testing.T) {
	// A regular file where the directory should be: fails even for root.
	base := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(base, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(filepath.Join(base, "spool")).Write(event(t, 1)); err == nil {
		t.Fatal("Write under a regular file succeeded")
	}
}
