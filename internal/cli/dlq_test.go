package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// dlqEnv has workers dns and lb whose targets fail, and one dead letter
// per worker for each of the VMs 1, 2 and 3.
func dlqEnv(t *testing.T) *opsEnv {
	t.Helper()
	e := newOpsEnv(t, "dns", "lb")
	for _, tg := range e.targets {
		tg.fail.Store(true)
	}
	for _, id := range []string{"1", "2", "3"} {
		e.Publish(vm(id, eventbus.KindRunning))
	}
	e.idle(t)
	testenv.WaitFor(t, 20*time.Second, "6 dead letters", func() bool { return e.deadLetters(t) == 6 })
	return e
}

// listed returns the dead letters `dlq list --json` prints.
func listed(t *testing.T, e *opsEnv, args ...string) []worker.StoredDeadLetter {
	t.Helper()
	code, out, errs := e.run(t, append([]string{"dlq", "list", "--json"}, args...)...)
	var dls []worker.StoredDeadLetter
	if code != 0 || json.Unmarshal([]byte(out), &dls) != nil {
		t.Fatalf("dlq list --json: exit %d %s\n%s", code, errs, out)
	}
	return dls
}

func TestDLQList(t *testing.T) {
	e := dlqEnv(t)
	tests := []struct {
		name      string
		args      []string
		want, not []string
	}{
		{"table", []string{"dlq", "list"}, []string{"SEQ", "WORKER", "dns", "lb", "one/1", "one/3", "running", "permanent", "apply: boom"}, nil},
		{"one worker", []string{"dlq", "list", "--worker", "lb"}, []string{"lb"}, []string{"dns"}},
		{"no such worker", []string{"dlq", "list", "--worker", "puppet"}, []string{"no dead letters"}, []string{"one/"}},
		{"json", []string{"dlq", "list", "--json", "--worker", "dns"}, []string{`"worker": "dns"`, `"reason": "permanent"`, `"subject": "vmglue.vm.one.`}, []string{`"lb"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := e.run(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			contains(t, out, tt.want, tt.not)
		})
	}
	if n := len(listed(t, e, "--worker", "dns")); n != 3 {
		t.Fatalf("dns dead letters: %d, want 3", n)
	}
}

func TestDLQRetryDrop(t *testing.T) {
	e := dlqEnv(t)
	dns := listed(t, e, "--worker", "dns")
	lb := listed(t, e, "--worker", "lb")
	events := func() int { return len(natstest.Events(t, e.JS)) }

	// The targets work again: a retried event converges, its dead letter is gone.
	for _, tg := range e.targets {
		tg.fail.Store(false)
	}
	before := events()
	code, out, errs := e.run(t, "dlq", "retry", fmt.Sprint(dns[0].Seq))
	if code != 0 || !strings.Contains(out, fmt.Sprintf("retried #%d dns", dns[0].Seq)) {
		t.Fatalf("retry: exit %d %q %q", code, out, errs)
	}
	if n := events(); n != before+1 {
		t.Fatalf("events after retry: %d, want %d (republished without its msg id)", n, before+1)
	}
	// Addressed to the dead letter's worker only: lb, failing or not, is
	// not asked again.
	if h := lastHeader(t, e, worker.HeaderForWorker); h != "dns" {
		t.Fatalf("retried event addressed to %q, want dns", h)
	}
	e.idle(t)
	var ev eventbus.Event
	if err := json.Unmarshal(dns[0].Event, &ev); err != nil {
		t.Fatal(err)
	}
	if rec := e.Record(&ev.Data); rec == nil || len(rec.Applied) != 1 || rec.Error != "" {
		t.Fatalf("dns record of %s after retry: %+v", ev.Data.Key(), rec)
	}

	tests := []struct {
		name      string
		args      []string
		code      int
		left      int // dead letters afterwards
		newEvents int
		out       string
	}{
		{"seq of another worker is refused", []string{"dlq", "drop", "--worker", "dns", fmt.Sprint(lb[0].Seq)}, 1, 5, 0, ""},
		{"neither seqs nor --all", []string{"dlq", "drop"}, 1, 5, 0, ""},
		{"both seqs and --all", []string{"dlq", "retry", "--all", "5"}, 1, 5, 0, ""},
		{"not a number", []string{"dlq", "drop", "x"}, 1, 5, 0, ""},
		{"retried seq is gone", []string{"dlq", "retry", fmt.Sprint(dns[0].Seq)}, 1, 5, 0, ""},
		{"drop one", []string{"dlq", "drop", fmt.Sprint(lb[0].Seq)}, 0, 4, 0, "dropped 1 dead letter(s)"},
		{"drop all of a worker", []string{"dlq", "drop", "--all", "--worker", "lb"}, 0, 2, 0, "dropped 2 dead letter(s)"},
		{"retry all", []string{"dlq", "retry", "--all"}, 0, 0, 2, "retried 2 dead letter(s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := events()
			code, out, errs := e.run(t, tt.args...)
			if code != tt.code || (code != 0 && strings.Count(errs, "\n") != 1) {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, errs)
			}
			if !strings.Contains(out, tt.out) {
				t.Fatalf("stdout %q lacks %q", out, tt.out)
			}
			if n := e.deadLetters(t); n != tt.left {
				t.Fatalf("%d dead letters left, want %d", n, tt.left)
			}
			if n := events() - before; n != tt.newEvents {
				t.Fatalf("%d events published, want %d", n, tt.newEvents)
			}
		})
	}
	e.idle(t)
	if n := e.deadLetters(t); n != 0 {
		t.Fatalf("%d dead letters after retrying with working targets, want 0", n)
	}
}

// lastHeader returns a header of the newest message of VMGLUE_EVENTS.
func lastHeader(t *testing.T, e *opsEnv, name string) string {
	t.Helper()
	ctx, st := e.eventStream(t)
	m, err := st.GetLastMsgForSubject(ctx, eventbus.SubjectAll)
	if err != nil {
		t.Fatal(err)
	}
	return m.Header.Get(name)
}

// eventStream returns VMGLUE_EVENTS and a context for the calls on it,
// cancelled at the end of the test.
func (e *opsEnv) eventStream(t *testing.T) (context.Context, jetstream.Stream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	st, err := e.JS.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, st
}
