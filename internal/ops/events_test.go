package ops_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/ops"
	"github.com/vmglue/vmglue/internal/ops/opstest"
	"github.com/vmglue/vmglue/internal/testenv"
)

func TestEventFilterSubject(t *testing.T) {
	tests := []struct {
		name string
		f    ops.EventFilter
		want string // "" = an error
	}{
		{"everything", ops.EventFilter{}, "vmglue.vm.*.*.*"},
		{"one vm of a cloud", ops.EventFilter{Cloud: "one", VM: "42"}, "vmglue.vm.one.42.*"},
		{"kind", ops.EventFilter{Kind: "deleted"}, "vmglue.vm.*.*.deleted"},
		{"kind as a type", ops.EventFilter{Kind: "vm.running"}, "vmglue.vm.*.*.running"},
		{"unknown kind", ops.EventFilter{Kind: "nope"}, ""},
		{"wildcard in a vm", ops.EventFilter{VM: ">"}, ""},
		{"dot in a cloud", ops.EventFilter{Cloud: "a.b"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.f.Subject()
			if got != tt.want || (err == nil) != (tt.want != "") {
				t.Fatalf("Subject() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time // zero = an error
	}{
		{"1h30m", now.Add(-90 * time.Minute)},
		{"2026-11-22T10:00:00Z", time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)},
		{"2026-11-22", time.Date(2026, 11, 22, 0, 0, 0, 0, time.Local)},
		{"-1h", time.Time{}},
		{"yesterday", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ops.ParseSince(tt.in, now)
			if !got.Equal(tt.want) || (err == nil) == tt.want.IsZero() {
				t.Fatalf("ParseSince(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestTail(t *testing.T) {
	e := opstest.New(t, "dns")
	v1 := opstest.VM("1", eventbus.KindRunning)
	v1.Attributes = map[string]string{"PUPPET_CHALLENGE": "s3cret"}
	e.Publish(v1)
	e.Publish(opstest.VM("2", eventbus.KindDeleted))

	stored := func(req ops.TailRequest) []string {
		t.Helper()
		req.NoFollow = true
		var out []string
		err := ops.Tail(ctx(t), e.JS, req, func(data []byte) error {
			out = append(out, string(data))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := stored(ops.TailRequest{}); len(got) != 2 || !strings.Contains(got[0], eventbus.RedactedValue) || strings.Contains(got[0], "s3cret") {
		t.Fatalf("every stored event, secrets redacted: %q", got)
	}
	if got := stored(ops.TailRequest{ShowSecrets: true}); len(got) != 2 || !strings.Contains(got[0], "s3cret") {
		t.Fatalf("with ShowSecrets: %q", got)
	}
	if got := stored(ops.TailRequest{EventFilter: ops.EventFilter{Kind: "deleted"}}); len(got) != 1 || !strings.Contains(got[0], `"subject":"vm/2"`) {
		t.Fatalf("deleted only: %q", got)
	}
	if got := stored(ops.TailRequest{Since: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}); len(got) != 0 {
		t.Fatalf("since the future: %q", got)
	}

	// Following: new events only, until the context ends (no error), or
	// until each fails (its error).
	fctx, cancel := context.WithCancel(ctx(t))
	got := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- ops.Tail(fctx, e.JS, ops.TailRequest{}, func(data []byte) error { got <- string(data); return nil })
	}()
	// Tail starts with new events only: publish until it passes one on.
	var first string
	testenv.WaitFor(t, 20*time.Second, "Tail to pass a new event on", func() bool {
		e.Publish(opstest.VM("3", eventbus.KindRunning))
		select {
		case first = <-got:
			return true
		case <-time.After(100 * time.Millisecond): // the consumer may not exist yet: publish again
			return false
		}
	})
	if !strings.Contains(first, `"subject":"vm/3"`) {
		t.Fatalf("followed %q, want a new event of VM 3", first)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Tail after cancel: %v", err)
	}
	boom := errors.New("boom")
	err := ops.Tail(ctx(t), e.JS, ops.TailRequest{All: true}, func([]byte) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Tail with a failing each: %v, want boom", err)
	}
}
