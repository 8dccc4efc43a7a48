package spool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
)

// event returns a valid event for VM n.
func event(t *testing.T, n int) *eventbus.Event {
	t.Helper()
	ev, err := eventbus.NewEvent(eventbus.VM{
		Cloud: "one", CloudType: "opennebula", ID: strconv.Itoa(n), Name: "vm" + strconv.Itoa(n),
		State: "ACTIVE", LCMState: "RUNNING", Kind: eventbus.KindRunning,
		Version: eventbus.Version{Seq: 1, Changed: int64(n) * 1e9},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &ev
}

// recorder is a PublishFunc that records ids and fails from the failAt-th call on.
// Events whose id is in refuse fail with a PermanentError.
type recorder struct {
	mu     sync.Mutex
	ids    []string
	failAt int // 0: never fail
	refuse map[string]bool
}

func (r *recorder) publish(_ context.Context, ev *eventbus.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse[ev.ID] {
		return Permanent(errors.New("nats: maximum payload exceeded"))
	}
	if r.failAt > 0 && len(r.ids)+1 >= r.failAt {
		return errors.New("nats down")
	}
	r.ids = append(r.ids, ev.ID)
	return nil
}

func TestWriteList(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "spool")
	s := New(dir)
	if got, err := s.List(); err != nil || len(got) != 0 {
		t.Fatalf("List of a missing dir = %v, %v; want empty, nil", got, err)
	}
	var want []string
	for i := range 5 {
		ev := event(t, i)
		path, err := s.Write(ev)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", path, fi.Mode().Perm())
		}
		want = append(want, ev.ID)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", di.Mode().Perm())
	}
	got, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("List: %d entries, want %d", len(got), len(want))
	}
	for i, e := range got {
		if e.ID != want[i] {
			t.Errorf("entry %d: id %s, want %s (oldest first)", i, e.ID, want[i])
		}
		if e.Time.IsZero() {
			t.Errorf("entry %d: zero time", i)
		}
	}
}

func TestParseName(t *testing.T) {
	tests := []struct {
		name string
		file string
		ok   bool
		id   string
	}{
		{"event", "00000000000000000001-000001-one-1-running-1-ab.json", true, "one-1-running-1-ab"},
		{"lock", ".lock", false, ""},
		{"temp", ".tmp-123", false, ""},
		{"bad", "00000000000000000001-000001-x.json.bad", false, ""},
		{"no id", "00000000000000000001-000001-.json", false, ""},
		{"not a time", "abc-000001-x.json", false, ""},
		{"foreign json", "notes.json", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := parseName(tt.file)
			if ok != tt.ok || e.ID != tt.id {
				t.Errorf("parseName(%q) = %q, %v; want %q, %v", tt.file, e.ID, ok, tt.id, tt.ok)
			}
		})
	}
}

func TestSafeID(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "one-1-running-0-abc", "one-1-running-0-abc"},
		{"slash", "../../etc/passwd", ".._.._etc_passwd"},
		{"empty", "", "_"},
		{"long", strings.Repeat("x", 300), strings.Repeat("x", maxIDLen)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := safeID(tt.in); got != tt.want {
				t.Errorf("safeID(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFlush(t *testing.T) {
	tests := []struct {
		name     string
		events   int
		failAt   int // publish fails from this call on (0: never)
		corrupt  []int
		refuse   []int // these fail with a PermanentError
		wantSent int
		wantLeft int
		wantBad  int
		wantErr  error
	}{
		{name: "empty", events: 0},
		{name: "all", events: 4, wantSent: 4},
		{name: "stops at first failure", events: 4, failAt: 3, wantSent: 2, wantLeft: 2, wantErr: errAny},
		{name: "first fails", events: 3, failAt: 1, wantLeft: 3, wantErr: errAny},
		{name: "corrupt quarantined", events: 4, corrupt: []int{1}, wantSent: 3, wantBad: 1, wantErr: ErrCorrupt},
		{name: "all corrupt", events: 2, corrupt: []int{0, 1}, wantBad: 2, wantErr: ErrCorrupt},
		{name: "refused quarantined, the rest sent", events: 4, refuse: []int{0, 2}, wantSent: 2, wantBad: 2, wantErr: ErrQuarantined},
		{name: "refused then down", events: 4, refuse: []int{0}, failAt: 2, wantSent: 1, wantLeft: 2, wantBad: 1, wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(t.TempDir())
			var want []string
			r := &recorder{failAt: tt.failAt, refuse: map[string]bool{}}
			for i := range tt.events {
				ev := event(t, i)
				if contains(tt.refuse, i) {
					r.refuse[ev.ID] = true
				}
				path, err := s.Write(ev)
				if err != nil {
					t.Fatal(err)
				}
				if contains(tt.corrupt, i) {
					if err := os.WriteFile(path, []byte(`{"specversion":"1.0","id":`), 0o600); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if !r.refuse[ev.ID] {
					want = append(want, ev.ID)
				}
			}
			sent, err := s.Flush(context.Background(), r.publish)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Flush: %v", err)
			case tt.wantErr == errAny && err == nil, tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Fatalf("Flush error %v, want %v", err, tt.wantErr)
			}
			if sent != tt.wantSent {
				t.Errorf("sent %d, want %d", sent, tt.wantSent)
			}
			for i, id := range r.ids {
				if id != want[i] {
					t.Errorf("send %d: %s, want %s (oldest first)", i, id, want[i])
				}
			}
			left, _ := s.List()
			if len(left) != tt.wantLeft {
				t.Errorf("%d left in the spool, want %d", len(left), tt.wantLeft)
			}
			q, err := s.ListQuarantined()
			if err != nil || len(q) != tt.wantBad {
				t.Errorf("%d quarantined files (%v), want %d", len(q), err, tt.wantBad)
			}
			for _, f := range q {
				if f.Reason == "" || f.Time.IsZero() {
					t.Errorf("quarantined %s without reason or time: %+v", f.Name, f)
				}
			}
		})
	}
}

// errAny in a test table means "some error".
var errAny = errors.New("any error")

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
