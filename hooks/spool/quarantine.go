package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vmglue/vmglue/eventbus"
)

// QuarantineDir is the subdirectory of a spool that holds the files that
// can never be sent: an event the bus refuses for good (larger than the
// server's max_payload, or than the stream's max_msg_size) or a file that
// cannot be decoded. Each such file is moved there unchanged, beside a
// "<name>.reason" file saying why. Flush never looks at it again, so one
// such file never blocks the events behind it; nothing in it is deleted by
// vmglue. An operator reads it with `vmglue spool list`, and may move a
// file back into the spool once the cause is fixed (e.g. max_payload
// raised).
const QuarantineDir = "quarantine"

// ReasonExt ends the name of the file beside a quarantined one that says
// why it was quarantined.
const ReasonExt = ".reason"

// PermanentError marks a publish error that no retry can cure: PublishFunc
// returns one (see Permanent) and Flush quarantines the file instead of
// stopping.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError (nil stays nil).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err is or wraps a PermanentError.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

// ErrQuarantined is wrapped by the errors of Flush about files it moved to
// the quarantine directory.
var ErrQuarantined = errors.New("spool file quarantined")

// Quarantined is one file in the quarantine directory.
type Quarantined struct {
	// Name is the file name, Path the full path.
	Name, Path string
	// Time is when it was moved there.
	Time time.Time
	// Reason says why (the first line of its .reason file).
	Reason string
}

func (s *Spool) quarantineDir() string { return filepath.Join(s.dir, QuarantineDir) }

// quarantine moves the spool file e into the quarantine directory with
// its reason, and returns the error that reports it.
func (s *Spool) quarantine(e Entry, cause error) error {
	dir := s.quarantineDir()
	dst := filepath.Join(dir, e.Name)
	err := os.MkdirAll(dir, 0o700)
	if err == nil {
		err = os.WriteFile(dst+ReasonExt, []byte(oneLine(cause.Error())+"\n"), 0o600)
	}
	if err == nil {
		err = os.Rename(e.Path, dst)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("%w %s: %v; moving it to %s failed: %w", ErrQuarantined, e.Name, cause, QuarantineDir, err)
	}
	return fmt.Errorf("%w: %s moved to %s/: %v", ErrQuarantined, e.Name, QuarantineDir, cause)
}

// WriteQuarantined stores ev durably straight in the quarantine directory,
// with cause as its reason: an event the bus refused for good, which the
// spool must keep (nothing is lost) but never send. It returns the path.
func (s *Spool) WriteQuarantined(ev *eventbus.Event, cause error) (string, error) {
	path, err := New(s.quarantineDir()).Write(ev)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path+ReasonExt, []byte(oneLine(cause.Error())+"\n"), 0o600); err != nil {
		return path, fmt.Errorf("quarantine event %s: %w", ev.ID, err)
	}
	return path, nil
}

// ListQuarantined returns the quarantined files, oldest first by name. A
// missing directory is an empty quarantine.
func (s *Spool) ListQuarantined() ([]Quarantined, error) {
	dir := s.quarantineDir()
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list spool quarantine: %w", err)
	}
	var out []Quarantined
	for _, de := range des {
		name := de.Name()
		if strings.HasSuffix(name, ReasonExt) || strings.HasPrefix(name, ".") || !de.Type().IsRegular() {
			continue
		}
		q := Quarantined{Name: name, Path: filepath.Join(dir, name)}
		if fi, err := os.Stat(q.Path + ReasonExt); err == nil {
			q.Time = fi.ModTime()
		}
		if b, err := os.ReadFile(q.Path + ReasonExt); err == nil {
			q.Reason = strings.TrimSpace(string(b))
		}
		out = append(out, q)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// oneLine keeps a reason on one bounded line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 500 {
		s = strings.ToValidUTF8(s[:500], "") + "…"
	}
	return s
}
