package ops_test

import (
	"slices"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/ops"
	"github.com/vmglue/vmglue/internal/ops/opstest"
	"github.com/vmglue/vmglue/internal/worker"
)

func TestReplayRequestCheck(t *testing.T) {
	tests := []struct {
		name string
		req  ops.ReplayRequest
		ok   bool
	}{
		{"no filter", ops.ReplayRequest{}, false},
		{"dry run alone is no filter", ops.ReplayRequest{DryRun: true}, false},
		{"all", ops.ReplayRequest{All: true}, true},
		{"one vm", ops.ReplayRequest{EventFilter: ops.EventFilter{VM: "1"}}, true},
		{"since", ops.ReplayRequest{Since: "1h"}, true},
		{"since and start sequence", ops.ReplayRequest{Since: "1h", StartSequence: 2}, false},
		{"bad worker name", ops.ReplayRequest{All: true, Worker: "d.n.s"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.req.Check(); (err == nil) != tt.ok {
				t.Fatalf("Check: %v, want ok %t", err, tt.ok)
			}
		})
	}
}

func TestReplay(t *testing.T) {
	e := opstest.New(t, "dns")
	for _, v := range []eventbus.VM{opstest.VM("1", eventbus.KindRunning), opstest.VM("2", eventbus.KindRunning),
		opstest.VM("3", eventbus.KindRunning), opstest.VM("3", eventbus.KindDeleted)} {
		v.Attributes = map[string]string{"API_TOKEN": "tok-" + v.ID}
		e.Publish(v)
	}
	e.Idle(t)

	tests := []struct {
		name      string
		req       ops.ReplayRequest
		seqs      []uint64 // passed to each
		published int
	}{
		{"dry run", ops.ReplayRequest{All: true, DryRun: true}, []uint64{1, 2, 3, 4}, 0},
		{"dry run by vm and kind", ops.ReplayRequest{EventFilter: ops.EventFilter{VM: "3", Kind: "vm.deleted"}, DryRun: true}, []uint64{4}, 0},
		{"dry run from a sequence", ops.ReplayRequest{StartSequence: 3, DryRun: true}, []uint64{3, 4}, 0},
		{"dry run since the future", ops.ReplayRequest{Since: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), DryRun: true}, nil, 0},
		{"one vm", ops.ReplayRequest{EventFilter: ops.EventFilter{VM: "2"}}, []uint64{2}, 1},
		// Never its own republished events: 5 stored, 5 replayed.
		{"everything", ops.ReplayRequest{All: true}, []uint64{1, 2, 3, 4, 5}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := natstest.Events(t, e.JS)
			var seqs []uint64
			n, err := ops.Replay(ctx(t), e.JS, tt.req, func(se ops.StoredEvent) error {
				seqs = append(seqs, se.Seq)
				if se.Event == nil || se.Event.Data.Attributes["API_TOKEN"] != eventbus.RedactedValue {
					t.Errorf("#%d: want a readable event with its secret redacted: %+v", se.Seq, se)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if n != len(tt.seqs) || !slices.Equal(seqs, tt.seqs) {
				t.Fatalf("replayed %d %v, want %v", n, seqs, tt.seqs)
			}
			after := natstest.Events(t, e.JS)
			if got := len(after) - len(before); got != tt.published {
				t.Fatalf("%d events published, want %d", got, tt.published)
			}
			// A replay is the same event again (secrets intact), stored anew.
			for _, ev := range after[len(before):] {
				if i := slices.IndexFunc(before, func(b eventbus.Event) bool { return b.ID == ev.ID }); i < 0 ||
					ev.Data.Attributes["API_TOKEN"] != before[i].Data.Attributes["API_TOKEN"] {
					t.Fatalf("replayed event %s is not a stored one", ev.ID)
				}
			}
		})
	}
	// The originals carry no replay header, every later message does.
	st, err := e.JS.Stream(ctx(t), eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 10; seq++ {
		m, err := st.GetMsg(ctx(t), seq)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := m.Header.Get(eventbus.HeaderReplay), map[bool]string{true: "", false: "1"}[seq <= 4]; got != want {
			t.Fatalf("message %d: %s %q, want %q", seq, eventbus.HeaderReplay, got, want)
		}
	}
	// The worker converged every replay to the newest snapshots: one/3
	// stays deleted.
	e.Idle(t)
	v3 := opstest.VM("3", eventbus.KindDeleted)
	if rec := e.Record(&v3); rec == nil || len(rec.Applied) != 0 {
		t.Fatalf("one/3 after replays: %+v, want deleted (nothing applied)", rec)
	}
	v1 := opstest.VM("1", eventbus.KindRunning)
	if rec := e.Record(&v1); rec == nil || rec.Applied["A web1"] != "10.0.0.1" {
		t.Fatalf("one/1 after replays: %+v", rec)
	}
}

// A replay for one worker reaches that worker only: the other acks the
// events unseen.
func TestReplayToOneWorker(t *testing.T) {
	e := opstest.New(t, "dns", "lb")
	e.Publish(opstest.VM("1", eventbus.KindRunning))
	e.Idle(t)
	// Both workers lost their record (what a replay repairs) and their
	// targets fail from now on: a worker that converges the replayed event
	// calls Apply and dead-letters it, one that skips it leaves no trace.
	applied, err := e.JS.KeyValue(ctx(t), eventbus.BucketApplied)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"dns", "lb"} {
		if err := applied.Delete(ctx(t), w+".one.1"); err != nil {
			t.Fatal(err)
		}
		e.Targets[w].Fail.Store(true)
	}
	for _, tc := range []struct {
		worker string
		dead   []string // workers with a dead letter afterwards
	}{{"dns", []string{"dns"}}, {"lb", []string{"dns", "lb"}}} {
		n, err := ops.Replay(ctx(t), e.JS, ops.ReplayRequest{EventFilter: ops.EventFilter{VM: "1"}, Worker: tc.worker}, nil)
		if err != nil || n == 0 {
			t.Fatalf("replay for %s: %d %v", tc.worker, n, err)
		}
		e.Idle(t)
		var got []string
		for _, w := range []string{"dns", "lb"} {
			if dls, err := worker.ListDeadLetters(ctx(t), e.JS, w); err != nil {
				t.Fatal(err)
			} else if len(dls) > 0 {
				got = append(got, w)
			}
		}
		if !slices.Equal(got, tc.dead) {
			t.Fatalf("after a replay for %s: dead letters of %v, want %v", tc.worker, got, tc.dead)
		}
	}
}
