package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/cli"
	"github.com/vmglue/vmglue/internal/ops"
	"github.com/vmglue/vmglue/internal/ops/opstest"
	"github.com/vmglue/vmglue/internal/testenv"
)

// opsEnv is a real nats-server with running workers (opstest.Env) that
// the command line is run against.
type opsEnv struct{ *opstest.Env }

func newOpsEnv(t *testing.T, workers ...string) *opsEnv { return &opsEnv{opstest.New(t, workers...)} }

// run runs the command line against the env's server.
func (e *opsEnv) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runAt(t, e.Server.URL, args...)
}

// runAt runs the command line against the NATS server at url and returns
// the exit code, stdout and stderr.
func runAt(t *testing.T, url string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := cli.Execute(ctx, append(args, "-s", url), &out, &errb)
	return code, out.String(), errb.String()
}

func contains(t *testing.T, out string, want, not []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	for _, n := range not {
		if strings.Contains(out, n) {
			t.Errorf("output has %q:\n%s", n, out)
		}
	}
}

func TestVM(t *testing.T) {
	e := newOpsEnv(t, "dns", "lb")
	e.Targets["lb"].Fail.Store(true)
	v1 := opstest.VM("42", eventbus.KindRunning)
	e.Publish(v1)
	v2 := v1
	v2.NICs = []eventbus.NIC{{ID: "0", IP: "10.0.9.42"}}
	v2.Version.Seq = 2
	ev2 := e.Publish(v2)
	other := opstest.VM("42", eventbus.KindRunning)
	other.Cloud = "two"
	e.Publish(other)
	e.Publish(opstest.VM("43", eventbus.KindRunning))
	e.Idle(t)
	testenv.WaitFor(t, 20*time.Second, "lb dead letters", func() bool { return e.DeadLetters(t) == 4 })

	tests := []struct {
		name      string
		args      []string
		want, not []string
	}{
		{"one cloud", []string{"vm", "42", "--cloud", "one"},
			[]string{"vm one/42 web42", "timeline (2 event(s))", "one/42 running", "ips=10.0.0.42", "ips=10.0.9.42",
				"snapshot: running", "version seq=2", "worker dns: 1 applied", "applied A web42 = 10.0.9.42", "by event " + ev2.ID,
				"worker lb: 0 applied", "last error: apply: boom", "dead letters (2):", "lb ", "permanent (event #2, 1 deliveries): apply: boom"},
			[]string{"two/42", "one/43", "10.0.0.43"}},
		{"every cloud", []string{"vm", "42"}, []string{"vm one/42", "vm two/42", "dead letters (1):"}, []string{"one/43"}},
		{"json", []string{"vm", "42", "--cloud", "two", "--json"}, []string{`"cloud": "two"`, `"applied": {`, `"A web42": "10.0.0.42"`}, []string{`"cloud": "one"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := e.run(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			t.Logf("%s", out)
			contains(t, out, tt.want, tt.not)
		})
	}

	code, out, _ := e.run(t, "vm", "42", "--json")
	var reps []ops.VMReport
	if code != 0 || json.Unmarshal([]byte(out), &reps) != nil || len(reps) != 2 {
		t.Fatalf("--json: exit %d, want one JSON array of 2 reports:\n%s", code, out)
	}
	if r := reps[0]; r.Cloud != "one" || len(r.Timeline) != 2 || r.Snapshot == nil || r.Workers["dns"] == nil || len(r.DeadLetters) != 2 {
		t.Fatalf("report of one/42: %+v", r)
	}

	for _, args := range [][]string{{"vm", "404"}, {"vm", "a.b"}, {"vm", "42", "--cloud", "x y"}} {
		code, _, errs := e.run(t, args...)
		if code != 1 || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d stderr %q, want exit 1 with one line", args, code, errs)
		}
	}
}
