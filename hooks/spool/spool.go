// Package spool keeps events on local disk when the bus cannot take them, and
// sends them later, oldest first.
//
// A spool is one directory (mode 0700, created on the first Write). Each event
// is one file named "<unixnano>-<seq>-<eventid>.json" (mode 0600), so the
// names sort oldest first. A file is written to a temporary name in the same
// directory, fsync'd, renamed into place and the directory fsync'd: a crash
// leaves either the whole event or nothing.
//
// Flush sends the files oldest first and removes each one only after the bus
// acknowledged it; it stops at the first failed send, so the order is kept. A
// file that can never be sent (it cannot be decoded, or the bus refuses it
// for good: larger than the server's max_payload) is moved to the quarantine
// subdirectory (QuarantineDir) and reported, so one such file never blocks
// the queue. Only one process flushes a spool at a
// time (flock on the directory); another one skips the flush with ErrBusy. A
// send that happens twice (a crash between the ack and the removal) is
// harmless: the event id is the JetStream Nats-Msg-Id, so the stream drops
// the copy.
package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vmglue/vmglue/eventbus"
)

// Suffixes and names of the files in a spool directory.
const (
	// Ext ends the name of every spooled event.
	Ext = ".json"
	// tmpPrefix starts the name of a file being written.
	tmpPrefix = ".tmp-"
	// staleTmp is the age after which Flush removes a leftover temp file.
	staleTmp = 10 * time.Minute
	// maxIDLen bounds the event id part of a file name.
	maxIDLen = 160
)

var (
	// ErrBusy is returned by Flush when another process is flushing the spool.
	ErrBusy = errors.New("spool is being flushed by another process")
	// ErrCorrupt is wrapped by the error about a file that could not be
	// decoded and was quarantined.
	ErrCorrupt = errors.New("corrupt spool file")
)

// seq orders the files this process writes within one nanosecond.
var seq atomic.Uint64

// Spool is a directory of events waiting to be sent. It is safe for
// concurrent use by several goroutines and processes.
type Spool struct {
	dir string
}

// New returns the spool in dir. Nothing is created before the first Write.
func New(dir string) *Spool { return &Spool{dir: dir} }

// Entry is one spooled event file.
type Entry struct {
	// Name is the file name, Path the full path.
	Name, Path string
	// ID is the event id as it appears in the name (unsafe characters
	// replaced by '_').
	ID string
	// Time is when the event was spooled.
	Time time.Time
}

// Write stores one event durably and returns the path of its file.
func (s *Spool) Write(ev *eventbus.Event) (string, error) {
	b, err := ev.Marshal()
	if err != nil {
		return "", fmt.Errorf("spool event %s: encode: %w", ev.ID, err)
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return "", fmt.Errorf("spool event %s: %w", ev.ID, err)
	}
	f, err := os.CreateTemp(s.dir, tmpPrefix+"*")
	if err != nil {
		return "", fmt.Errorf("spool event %s: %w", ev.ID, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// CreateTemp makes 0600 files; Chmod in case of an unusual umask setup.
	if err := f.Chmod(0o600); err != nil {
		return "", fmt.Errorf("spool event %s: %w", ev.ID, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		return "", fmt.Errorf("spool event %s: %w", ev.ID, err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("spool event %s: %w", ev.ID, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("spool event %s: %w", ev.ID, err)
	}
	name := fileName(time.Now(), seq.Add(1), ev.ID)
	path := filepath.Join(s.dir, name)
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("spool event %s: %w", ev.ID, err)
	}
	ok = true
	if err := syncDir(s.dir); err != nil {
		return path, fmt.Errorf("spool event %s: %w", ev.ID, err)
	}
	return path, nil
}

// List returns the spooled events, oldest first. A missing directory is an
// empty spool.
func (s *Spool) List() ([]Entry, error) {
	des, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list spool: %w", err)
	}
	var out []Entry
	for _, de := range des {
		if e, ok := parseName(de.Name()); ok && de.Type().IsRegular() {
			e.Path = filepath.Join(s.dir, e.Name)
			out = append(out, e)
		}
	}
	// ReadDir sorts by name already; sort again so the order does not
	// depend on that detail.
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// fileName is "<unixnano, 20 digits>-<seq, 6+ digits>-<id>.json".
func fileName(t time.Time, n uint64, id string) string {
	return fmt.Sprintf("%020d-%06d-%s%s", t.UnixNano(), n, safeID(id), Ext)
}

// parseName reverses fileName; ok is false for any other file.
func parseName(name string) (Entry, bool) {
	if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, Ext) {
		return Entry{}, false
	}
	parts := strings.SplitN(strings.TrimSuffix(name, Ext), "-", 3)
	if len(parts) != 3 || parts[2] == "" {
		return Entry{}, false
	}
	ns, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return Entry{}, false
	}
	if _, err := strconv.ParseUint(parts[1], 10, 64); err != nil {
		return Entry{}, false
	}
	return Entry{Name: name, ID: parts[2], Time: time.Unix(0, ns)}, true
}

// safeID keeps letters, digits, '-', '_' and '.', so an id can never leave
// the directory or hide the extension.
func safeID(id string) string {
	if len(id) > maxIDLen {
		id = id[:maxIDLen]
	}
	b := []byte(id)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

// syncDir makes a rename or create in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
