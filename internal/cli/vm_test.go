package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/cli"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

// mapTarget is a tiny in-memory worker.Target: one "A <name>" object per VM.
// It is an honest test double for the runtime, not for DNS: these tests are
// about what the ops commands read from the bus, which the real runtime
// (worker.Runner on a real nats-server) writes. While fail is set, Apply
// fails permanently, so the runtime dead-letters the event.
type mapTarget struct {
	name string
	fail atomic.Bool
}

func (m *mapTarget) Name() string { return m.name }

func (m *mapTarget) Desired(vm *eventbus.VM) (worker.Objects, error) {
	if vm.Deleted() || len(vm.NICs) == 0 {
		return worker.Objects{}, nil
	}
	return worker.Objects{"A " + vm.Name: vm.NICs[0].IP}, nil
}

func (m *mapTarget) Apply(_ context.Context, _ *eventbus.VM, _, want worker.Objects) (worker.Objects, error) {
	if m.fail.Load() {
		return nil, worker.Permanent(errors.New("boom"))
	}
	return want.Clone(), nil
}

// opsEnv is a real nats-server with running workers.
type opsEnv struct {
	*workertest.Harness
	targets map[string]*mapTarget
}

// newOpsEnv starts a provisioned nats-server and one runner per worker name.
func newOpsEnv(t *testing.T, workers ...string) *opsEnv {
	t.Helper()
	e := &opsEnv{Harness: workertest.NewHarness(t, workers[0]), targets: map[string]*mapTarget{}}
	for _, w := range workers {
		e.targets[w] = &mapTarget{name: w}
		e.StartRunner(e.targets[w], workertest.TestOptions())
	}
	return e
}

// idle waits until every worker has settled every stored event.
func (e *opsEnv) idle(t *testing.T) {
	t.Helper()
	for w := range e.targets {
		testenv.WaitFor(t, 20*time.Second, "worker "+w+" idle", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			c, err := e.JS.Consumer(ctx, eventbus.StreamEvents, worker.ConsumerName(w))
			if err != nil {
				return false
			}
			ci, err := c.Info(ctx)
			if err != nil || ci.NumPending != 0 || ci.NumAckPending != 0 {
				return false
			}
			st, err := e.JS.Stream(ctx, eventbus.StreamEvents)
			return err == nil && ci.AckFloor.Stream >= st.CachedInfo().State.LastSeq
		})
	}
}

// deadLetters returns how many dead letters the stream holds.
func (e *opsEnv) deadLetters(t *testing.T) int {
	t.Helper()
	dls, err := worker.ListDeadLetters(context.Background(), e.JS, "")
	if err != nil {
		t.Fatal(err)
	}
	return len(dls)
}

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
	e.targets["lb"].fail.Store(true)
	v1 := vm("42", eventbus.KindRunning)
	e.Publish(v1)
	v2 := v1
	v2.NICs = []eventbus.NIC{{ID: "0", IP: "10.0.9.42"}}
	v2.Version.Seq = 2
	ev2 := e.Publish(v2)
	other := vm("42", eventbus.KindRunning)
	other.Cloud = "two"
	e.Publish(other)
	e.Publish(vm("43", eventbus.KindRunning))
	e.idle(t)
	testenv.WaitFor(t, 20*time.Second, "lb dead letters", func() bool { return e.deadLetters(t) == 4 })

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
	var reps []cli.VMReport
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
