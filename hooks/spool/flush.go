package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vmglue/vmglue/eventbus"
)

// PublishFunc sends one event and returns nil only once the bus has
// acknowledged it (a duplicate counts as acknowledged).
type PublishFunc func(ctx context.Context, ev *eventbus.Event) error

// Flush sends the spooled events oldest first and removes each one after its
// ack. It returns how many were sent. It stops at the first failed send and
// returns that error; the failed event and everything newer stay spooled.
//
// A file that can never be sent is moved to the quarantine directory
// (QuarantineDir) and Flush goes on with the next file: one that cannot be
// decoded (the error wraps ErrCorrupt too), or whose publish failed with a
// PermanentError. The error returned at the end then wraps ErrQuarantined. When
// another process holds the spool lock, Flush sends nothing and returns
// ErrBusy. An empty or missing spool costs one directory read and takes no
// lock. Flush checks ctx between events.
func (s *Spool) Flush(ctx context.Context, publish PublishFunc) (sent int, err error) {
	entries, err := s.List()
	if err != nil || len(entries) == 0 {
		return 0, err
	}
	unlock, err := s.lock()
	if err != nil {
		return 0, err
	}
	defer unlock()
	// Another flusher may have sent some of them before we got the lock.
	if entries, err = s.List(); err != nil {
		return 0, err
	}
	var aside []error
	defer func() {
		if sent > 0 || len(aside) > 0 {
			// Removals need not be durable (a re-send is a duplicate), but
			// keep the directory tidy on disk.
			_ = syncDir(s.dir)
		}
		if len(aside) > 0 {
			err = errors.Join(append([]error{err}, aside...)...)
		}
	}()
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return sent, fmt.Errorf("flush spool: %w", err)
		}
		b, err := os.ReadFile(e.Path)
		if errors.Is(err, os.ErrNotExist) {
			continue // sent and removed by a flusher that did not lock (should not happen)
		}
		if err != nil {
			return sent, fmt.Errorf("flush spool: read %s: %w", e.Name, err)
		}
		ev, err := eventbus.Unmarshal(b)
		if err != nil {
			aside = append(aside, fmt.Errorf("%w: %w", ErrCorrupt, s.quarantine(e, err)))
			continue
		}
		if err := publish(ctx, &ev); IsPermanent(err) {
			aside = append(aside, s.quarantine(e, err))
			continue
		} else if err != nil {
			return sent, fmt.Errorf("flush spool: send %s: %w", e.Name, err)
		}
		if err := os.Remove(e.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return sent + 1, fmt.Errorf("flush spool: remove %s after send: %w", e.Name, err)
		}
		sent++
	}
	s.removeStaleTemp()
	return sent, nil
}

// lock takes the spool's flush lock without waiting: an flock on the
// directory itself, so that no lock file exists whose owner could lock out
// another user (a `vmglue spool flush` run as root beside oneadmin's hooks).
func (s *Spool) lock() (unlock func(), err error) {
	f, err := os.OpenFile(s.dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("lock spool: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrBusy
		}
		return nil, fmt.Errorf("lock spool: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// removeStaleTemp deletes temp files left by a writer that crashed. Called
// with the lock held; a writer never takes minutes for one file.
func (s *Spool) removeStaleTemp() {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), tmpPrefix) {
			continue
		}
		if fi, err := de.Info(); err == nil && time.Since(fi.ModTime()) > staleTmp {
			_ = os.Remove(filepath.Join(s.dir, de.Name()))
		}
	}
}
