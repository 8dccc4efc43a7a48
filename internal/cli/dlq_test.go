package cli_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/ops"
	"github.com/vmglue/vmglue/internal/ops/opstest"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// dlqEnv has workers dns and lb whose targets fail, and one dead letter
// per worker for each of the VMs 1, 2 and 3.
func dlqEnv(t *testing.T) *opsEnv {
	t.Helper()
	e := newOpsEnv(t, "dns", "lb")
	for _, tg := range e.Targets {
		tg.Fail.Store(true)
	}
	for _, id := range []string{"1", "2", "3"} {
		e.Publish(opstest.VM(id, eventbus.KindRunning))
	}
	e.Idle(t)
	testenv.WaitFor(t, 20*time.Second, "6 dead letters", func() bool { return e.DeadLetters(t) == 6 })
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
	for _, tg := range e.Targets {
		tg.Fail.Store(false)
	}
	code, out, errs := e.run(t, "dlq", "retry", fmt.Sprint(dns[0].Seq))
	if code != 0 || out != fmt.Sprintf("retried #%d dns %s\nretried 1 dead letter(s)\n", dns[0].Seq, ops.DeadLetterVM(dns[0])) {
		t.Fatalf("retry: exit %d %q %q", code, out, errs)
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
			if n := e.DeadLetters(t); n != tt.left {
				t.Fatalf("%d dead letters left, want %d", n, tt.left)
			}
			if n := events() - before; n != tt.newEvents {
				t.Fatalf("%d events published, want %d", n, tt.newEvents)
			}
		})
	}
	e.Idle(t)
	if n := e.DeadLetters(t); n != 0 {
		t.Fatalf("%d dead letters after retrying with working targets, want 0", n)
	}
}
