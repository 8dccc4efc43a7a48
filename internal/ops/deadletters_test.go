package ops_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/ops"
	"github.com/vmglue/vmglue/internal/ops/opstest"
	"github.com/vmglue/vmglue/internal/worker"
)

func TestDeadLetterVMKind(t *testing.T) {
	tests := []struct{ subject, vm, kind string }{
		{"vmglue.vm.one.42.running", "one/42", "running"},
		{"vmglue.vm.one.42", "one/42", "?"},
		{"junk", "?", "?"},
	}
	for _, tt := range tests {
		dl := worker.StoredDeadLetter{DeadLetter: worker.DeadLetter{Subject: tt.subject}}
		if vm, kind := ops.DeadLetterVM(dl), ops.DeadLetterKind(dl); vm != tt.vm || kind != tt.kind {
			t.Errorf("%s: %s %s, want %s %s", tt.subject, vm, kind, tt.vm, tt.kind)
		}
	}
}

func TestSettleRequestCheck(t *testing.T) {
	tests := []struct {
		name string
		req  ops.SettleRequest
		ok   bool
	}{
		{"seqs", ops.SettleRequest{Action: ops.Drop, Seqs: []uint64{1}}, true},
		{"all", ops.SettleRequest{Action: ops.Retry, All: true}, true},
		{"neither", ops.SettleRequest{Action: ops.Drop}, false},
		{"both", ops.SettleRequest{Action: ops.Retry, All: true, Seqs: []uint64{1}}, false},
		{"no action", ops.SettleRequest{All: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.req.Check(); (err == nil) != tt.ok {
				t.Fatalf("Check: %v, want ok %t", err, tt.ok)
			}
		})
	}
}

func TestDeadLettersSettle(t *testing.T) {
	e := opstest.New(t, "dns", "lb")
	for _, tg := range e.Targets {
		tg.Fail.Store(true)
	}
	for _, id := range []string{"1", "2", "3"} {
		v := opstest.VM(id, eventbus.KindRunning)
		v.Attributes = map[string]string{"DB_PASSWORD": "pw"}
		e.Publish(v)
	}
	e.Idle(t)
	e.WaitDeadLetters(t, 6)
	list := func(w string) []worker.StoredDeadLetter {
		t.Helper()
		dls, err := ops.DeadLetters(ctx(t), e.JS, ops.DeadLetterRequest{Worker: w})
		if err != nil {
			t.Fatal(err)
		}
		return dls
	}
	dns, lb := list("dns"), list("lb")
	if len(dns) != 3 || len(lb) != 3 || dns[0].Reason != worker.ReasonPermanent || dns[0].FailedAt.IsZero() {
		t.Fatalf("dead letters: dns %+v lb %+v", dns, lb)
	}
	var ev eventbus.Event
	if err := json.Unmarshal(dns[0].Event, &ev); err != nil || ev.Data.Attributes["DB_PASSWORD"] != eventbus.RedactedValue {
		t.Fatalf("listed event, want its secret redacted: %v %s", err, dns[0].Event)
	}

	// The targets work again: a retried event is republished for the dead
	// letter's worker only, converges, and its dead letter is gone.
	for _, tg := range e.Targets {
		tg.Fail.Store(false)
	}
	before := len(natstest.Events(t, e.JS))
	var settled []uint64
	n, err := ops.SettleDeadLetters(ctx(t), e.JS, ops.SettleRequest{Action: ops.Retry, Seqs: []uint64{dns[0].Seq}},
		func(dl worker.StoredDeadLetter) error {
			if !strings.Contains(string(dl.Event), eventbus.RedactedValue) {
				t.Errorf("settled dead letter passed on with its secret: %s", dl.Event)
			}
			settled = append(settled, dl.Seq)
			return nil
		})
	if err != nil || n != 1 || len(settled) != 1 || settled[0] != dns[0].Seq {
		t.Fatalf("retry: %d %v %v", n, settled, err)
	}
	if got := len(natstest.Events(t, e.JS)); got != before+1 {
		t.Fatalf("events after retry: %d, want %d (republished without its msg id)", got, before+1)
	}
	st, err := e.JS.Stream(ctx(t), eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx(t), eventbus.SubjectAll)
	if err != nil || m.Header.Get(worker.HeaderForWorker) != "dns" {
		t.Fatalf("retried event addressed to %q (%v), want dns", m.Header.Get(worker.HeaderForWorker), err)
	}
	e.Idle(t)
	var orig eventbus.Event
	if err := json.Unmarshal(dns[0].Event, &orig); err != nil {
		t.Fatal(err)
	}
	if rec := e.Record(&orig.Data); rec == nil || len(rec.Applied) != 1 || rec.Error != "" {
		t.Fatalf("dns record of %s after retry: %+v", orig.Data.Key(), rec)
	}

	tests := []struct {
		name  string
		req   ops.SettleRequest
		n     int
		isErr error // nil: no error wanted; errAny: some error
		left  int
	}{
		{"a seq of another worker", ops.SettleRequest{Action: ops.Drop, Worker: "dns", Seqs: []uint64{lb[0].Seq}}, 0, errAny, 5},
		{"a settled seq", ops.SettleRequest{Action: ops.Retry, Seqs: []uint64{dns[0].Seq}}, 0, worker.ErrDeadLetterNotFound, 5},
		{"one valid, one settled: nothing done", ops.SettleRequest{Action: ops.Drop, Seqs: []uint64{lb[0].Seq, dns[0].Seq}}, 0, worker.ErrDeadLetterNotFound, 5},
		{"drop one", ops.SettleRequest{Action: ops.Drop, Seqs: []uint64{lb[0].Seq}}, 1, nil, 4},
		{"drop all of a worker", ops.SettleRequest{Action: ops.Drop, All: true, Worker: "lb"}, 2, nil, 2},
		{"retry all", ops.SettleRequest{Action: ops.Retry, All: true}, 2, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := ops.SettleDeadLetters(ctx(t), e.JS, tt.req, nil)
			switch {
			case tt.isErr == nil && err != nil, tt.isErr != nil && err == nil,
				tt.isErr != nil && tt.isErr != errAny && !errors.Is(err, tt.isErr):
				t.Fatalf("error %v, want %v", err, tt.isErr)
			}
			if n != tt.n {
				t.Fatalf("%d settled, want %d", n, tt.n)
			}
			if got := e.DeadLetters(t); got != tt.left {
				t.Fatalf("%d dead letters left, want %d", got, tt.left)
			}
		})
	}
	e.Idle(t)
	if got := e.DeadLetters(t); got != 0 {
		t.Fatalf("%d dead letters after retrying with working targets, want 0", got)
	}
}

// errAny stands for any error in a test table.
var errAny = errors.New("any error")
