package worker_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

// flakyTarget wraps memTarget: while fail is set, every Apply fails
// permanently, so the runtime dead-letters the event.
type flakyTarget struct {
	*memTarget
	fail atomic.Bool
}

func (f *flakyTarget) Apply(ctx context.Context, req worker.Request) (worker.Objects, error) {
	if f.fail.Load() {
		return nil, worker.Permanent(errors.New("boom"))
	}
	return f.memTarget.Apply(ctx, req)
}

// deadLettered starts a failing worker "mem", publishes the VMs and waits
// until each has its dead letter.
func deadLettered(t *testing.T, ids ...string) (*workertest.Harness, *flakyTarget) {
	t.Helper()
	f := &flakyTarget{memTarget: newMemTarget("mem")}
	f.fail.Store(true)
	h := workertest.NewHarness(t, "mem")
	h.StartRunner(f, workertest.TestOptions())
	for _, id := range ids {
		h.Publish(testVM(id))
	}
	h.WaitIdle()
	h.Eventually("dead letters", func() bool {
		dls, err := worker.ListDeadLetters(context.Background(), h.JS, "mem")
		return err == nil && len(dls) == len(ids)
	})
	return h, f
}

func TestDeadLetterRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, f := deadLettered(t, "1", "2", "3")

	dls, err := worker.ListDeadLetters(ctx, h.JS, "mem")
	if err != nil {
		t.Fatal(err)
	}
	byVM := map[string]worker.StoredDeadLetter{} // dead letters come in any order
	for i, dl := range dls {
		if dl.Worker != "mem" || dl.Reason != worker.ReasonPermanent || !strings.HasSuffix(dl.Error, "boom") || dl.Seq == 0 {
			t.Fatalf("dead letter %d: %+v", i, dl)
		}
		if i > 0 && dl.Seq <= dls[i-1].Seq {
			t.Fatalf("dead letters not oldest first: %d after %d", dl.Seq, dls[i-1].Seq)
		}
		byVM[dl.Subject] = dl
	}
	first, second, third := byVM["vmglue.vm.one.1.running"], byVM["vmglue.vm.one.2.running"], byVM["vmglue.vm.one.3.running"]
	tests := []struct {
		name   string
		worker string
		want   int
	}{
		{"one worker", "mem", 3},
		{"every worker", "", 3},
		{"other worker", "dns", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := worker.ListDeadLetters(ctx, h.JS, tt.worker)
			if err != nil || len(got) != tt.want {
				t.Fatalf("ListDeadLetters(%q) = %d, %v; want %d", tt.worker, len(got), err, tt.want)
			}
		})
	}
	if got, err := worker.ListVMDeadLetters(ctx, h.JS, "one", "2"); err != nil || len(got) != 1 || got[0].Seq != second.Seq {
		t.Fatalf("ListVMDeadLetters(one, 2) = %+v, %v", got, err)
	}

	// Retry the first once the target works again: the event is stored a
	// second time, converges, and its dead letter is gone.
	before := len(natstest.Events(t, h.JS))
	f.fail.Store(false)
	if err := worker.RetryDeadLetter(ctx, h.JS, first.Seq); err != nil {
		t.Fatal(err)
	}
	if after := len(natstest.Events(t, h.JS)); after != before+1 {
		t.Fatalf("events after retry: %d, want %d", after, before+1)
	}
	h.WaitIdle()
	vm := testVM("1")
	if rec := h.Record(&vm); rec == nil || rec.Applied["A web1"] != "10.0.0.1" {
		t.Fatalf("record after retry: %+v", rec)
	}
	// Drop the second; the third stays.
	if err := worker.DropDeadLetter(ctx, h.JS, second.Seq); err != nil {
		t.Fatal(err)
	}
	left, err := worker.ListDeadLetters(ctx, h.JS, "")
	if err != nil || len(left) != 1 || left[0].Seq != third.Seq {
		t.Fatalf("left after retry and drop: %+v, %v; want only seq %d", left, err, third.Seq)
	}
	for _, seq := range []uint64{first.Seq, second.Seq, 9999} {
		if err := worker.DropDeadLetter(ctx, h.JS, seq); !errors.Is(err, worker.ErrDeadLetterNotFound) {
			t.Errorf("drop %d again: %v, want ErrDeadLetterNotFound", seq, err)
		}
		if err := worker.RetryDeadLetter(ctx, h.JS, seq); !errors.Is(err, worker.ErrDeadLetterNotFound) {
			t.Errorf("retry %d again: %v, want ErrDeadLetterNotFound", seq, err)
		}
	}
}

func TestRetryInvalidDeadLetter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := workertest.NewHarness(t, "mem")
	h.StartRunner(newMemTarget("mem"), workertest.TestOptions())
	if _, err := h.JS.Publish(ctx, "vmglue.vm.one.9.running", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	h.WaitIdle()
	var dls []worker.StoredDeadLetter
	h.Eventually("dead letter", func() bool {
		var err error
		dls, err = worker.ListDeadLetters(ctx, h.JS, "mem")
		return err == nil && len(dls) == 1
	})
	if dls[0].Reason != worker.ReasonInvalid {
		t.Fatalf("dead letter: %+v", dls[0])
	}
	if err := worker.RetryDeadLetter(ctx, h.JS, dls[0].Seq); err == nil || !strings.Contains(err.Error(), "drop it") {
		t.Fatalf("retry of an invalid event: %v, want a refusal", err)
	}
	if err := worker.DropDeadLetter(ctx, h.JS, dls[0].Seq); err != nil {
		t.Fatal(err)
	}
}

// An event just under NATS' max_payload (stored by a source older than the
// event limits, or by another publisher) fails permanently: its dead letter
// must not fail for size (before, the wrapper pushed it over 1 MiB and the
// event was retried about once a second for ever). The dead letter refers
// to the stored event and keeps a bounded excerpt; a retry republishes the
// whole event.
func TestDeadLetterHugeEvent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := &flakyTarget{memTarget: newMemTarget("mem")}
	f.fail.Store(true)
	h := workertest.NewHarness(t, "mem")
	h.StartRunner(f, workertest.TestOptions())

	ev, err := eventbus.NewEvent(testVM("5"))
	if err != nil {
		t.Fatal(err)
	}
	ev.Data.Attributes = map[string]string{"BLOB": ""}
	b, _ := ev.Marshal()
	ev.Data.Attributes["BLOB"] = strings.Repeat("x", 1<<20-128-len(b))
	body, _ := ev.Marshal()
	ack, err := h.JS.Publish(ctx, ev.NATSSubject(), body)
	if err != nil {
		t.Fatalf("publish an event of %d bytes: %v", len(body), err)
	}
	var dls []worker.StoredDeadLetter
	h.Eventually("dead letter", func() bool {
		dls, err = worker.ListDeadLetters(ctx, h.JS, "mem")
		return err == nil && len(dls) == 1
	})
	h.WaitIdle()
	dl := dls[0]
	if !dl.EventCut || dl.EventSize != len(body) || dl.StreamSeq != ack.Sequence || len(dl.Event) > worker.MaxDeadLetterEvent {
		t.Fatalf("dead letter: cut %v, size %d, seq %d, excerpt %d bytes; want cut, %d, %d, at most %d",
			dl.EventCut, dl.EventSize, dl.StreamSeq, len(dl.Event), len(body), ack.Sequence, worker.MaxDeadLetterEvent)
	}
	if got, err := eventbus.Unmarshal(dl.Event); err != nil || got.ID != ev.ID || got.Data.ID != "5" {
		t.Fatalf("excerpt %.200s: %v", dl.Event, err)
	}
	if n := metric(t, h, "vmglue_worker_retries_total", "", ""); n != 0 {
		t.Errorf("retries_total = %g, want 0 (no retry loop)", n)
	}

	f.fail.Store(false)
	if err := worker.RetryDeadLetter(ctx, h.JS, dl.Seq); err != nil {
		t.Fatal(err)
	}
	evs := natstest.Events(t, h.JS)
	if last := evs[len(evs)-1]; last.ID != ev.ID || last.Data.Attributes["BLOB"] != ev.Data.Attributes["BLOB"] {
		t.Fatalf("retry republished %s with a BLOB of %d bytes, want the whole event", last.ID, len(last.Data.Attributes["BLOB"]))
	}
}
