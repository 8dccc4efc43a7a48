package cli_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/worker"
)

func TestReplay(t *testing.T) {
	e := newOpsEnv(t, "dns")
	for _, id := range []string{"1", "2", "3"} {
		e.Publish(vm(id, eventbus.KindRunning))
	}
	e.Publish(vm("3", eventbus.KindDeleted))
	e.idle(t)

	tests := []struct {
		name      string
		args      []string
		code      int
		published int
		out, not  []string
	}{
		{"no filter is refused", []string{"replay"}, 1, 0, nil, nil},
		{"--worker with a bad name", []string{"replay", "--all", "--worker", "d.n.s"}, 1, 0, nil, nil},
		{"--since with --start-sequence", []string{"replay", "--since", "1h", "--start-sequence", "2"}, 1, 0, nil, nil},
		{"bad type", []string{"replay", "--type", "nope"}, 1, 0, nil, nil},
		{"dry run all", []string{"replay", "--all", "--dry-run"}, 0, 0,
			[]string{"would replay #1 ", "one/1 running", "#4 ", "one/3 deleted", "4 event(s) would be replayed (dry run"}, nil},
		{"dry run by vm and type", []string{"replay", "--vm", "3", "--type", "deleted", "--dry-run"}, 0, 0,
			[]string{"would replay #4 ", "1 event(s) would be replayed"}, []string{"one/1", "one/3 running"}},
		{"dry run from a sequence", []string{"replay", "--start-sequence", "3", "--dry-run"}, 0, 0,
			[]string{"#3 ", "#4 ", "2 event(s) would be replayed"}, []string{"#1 ", "#2 "}},
		{"dry run since the future", []string{"replay", "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "--dry-run"}, 0, 0,
			[]string{"0 event(s) would be replayed"}, nil},
		{"one vm", []string{"replay", "--vm", "2"}, 0, 1, []string{"replayed 1 event(s)"}, nil},
		{"everything", []string{"replay", "--all"}, 0, 5, []string{"replayed 5 event(s)"}, nil},
		{"by cloud since an hour", []string{"replay", "--cloud", "one", "--since", "1h"}, 0, 10, []string{"replayed 10 event(s)"}, nil},
		{"other cloud", []string{"replay", "--cloud", "two"}, 0, 0, []string{"replayed 0 event(s)"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := natstest.Events(t, e.JS)
			code, out, errs := e.run(t, tt.args...)
			if code != tt.code || (code != 0 && strings.Count(errs, "\n") != 1) {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, errs)
			}
			contains(t, out, tt.out, tt.not)
			after := natstest.Events(t, e.JS)
			if n := len(after) - len(before); n != tt.published {
				t.Fatalf("%d events published, want %d", n, tt.published)
			}
			// A replay is the same event again, stored anew.
			for i, ev := range after[len(before):] {
				if !hasEvent(before, ev.ID) {
					t.Fatalf("replayed event %d %s is not a stored one", i, ev.ID)
				}
			}
		})
	}
	if errs := replayHeaders(t, e); errs != "" {
		t.Fatal(errs)
	}
	// The worker settled every replay (idle waits for its ack floor to reach
	// the stream's last message) and converged to the newest snapshots:
	// one/3 stays deleted, so its record holds nothing.
	e.idle(t)
	v3 := vm("3", eventbus.KindDeleted)
	if rec := e.Record(&v3); rec == nil || len(rec.Applied) != 0 {
		t.Fatalf("one/3 after replays: %+v, want deleted (nothing applied)", rec)
	}
	v1 := vm("1", eventbus.KindRunning)
	if rec := e.Record(&v1); rec == nil || rec.Applied["A web1"] != "10.0.0.1" {
		t.Fatalf("one/1 after replays: %+v", rec)
	}
}

func hasEvent(evs []eventbus.Event, id string) bool {
	for _, ev := range evs {
		if ev.ID == id {
			return true
		}
	}
	return false
}

// replayHeaders checks that the original events carry no replay header and
// every later one does; it returns what is wrong.
func replayHeaders(t *testing.T, e *opsEnv) string {
	t.Helper()
	ctx, st := e.eventStream(t)
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := m.Header.Get("Vmglue-Replay"), map[bool]string{true: "", false: "1"}[seq <= 4]; got != want {
			return fmt.Sprintf("message %d: Vmglue-Replay %q, want %q", seq, got, want)
		}
	}
	return ""
}

// replay --worker reaches one worker: the other acks the events unseen.
func TestReplayToOneWorker(t *testing.T) {
	e := newOpsEnv(t, "dns", "lb")
	e.Publish(vm("1", eventbus.KindRunning))
	e.idle(t)
	// Both workers lost their record (what a replay repairs) and their
	// targets fail from now on: a worker that converges the replayed event
	// calls Apply and dead-letters it, one that skips it leaves no trace.
	applied, err := e.JS.KeyValue(context.Background(), eventbus.BucketApplied)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"dns", "lb"} {
		if err := applied.Delete(context.Background(), w+".one.1"); err != nil {
			t.Fatal(err)
		}
		e.targets[w].fail.Store(true)
	}
	for _, tc := range []struct {
		worker string
		dead   []string // workers with a dead letter afterwards
	}{{"dns", []string{"dns"}}, {"lb", []string{"dns", "lb"}}} {
		code, out, errs := e.run(t, "replay", "--vm", "1", "--worker", tc.worker)
		if code != 0 || !strings.Contains(out, "replayed ") {
			t.Fatalf("replay --worker %s: exit %d %q %q", tc.worker, code, out, errs)
		}
		e.idle(t)
		var got []string
		for _, w := range []string{"dns", "lb"} {
			if dls, err := worker.ListDeadLetters(context.Background(), e.JS, w); err != nil {
				t.Fatal(err)
			} else if len(dls) > 0 {
				got = append(got, w)
			}
		}
		if !slices.Equal(got, tc.dead) {
			t.Fatalf("after replay --worker %s: dead letters of %v, want %v", tc.worker, got, tc.dead)
		}
	}
}
