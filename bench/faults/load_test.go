package faults

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/delivery"
	"github.com/vmglue/vmglue/hooks/opennebula"
	"github.com/vmglue/vmglue/internal/testenv"
)

// vms returns n running VMs with distinct ids, names and addresses.
func vms(n int) []testenv.OneVM {
	t0 := time.Now().Unix()
	out := make([]testenv.OneVM, n)
	for i := range out {
		out[i] = testenv.OneVM{ID: 1000 + i, Name: fmt.Sprintf("vm%05d", i),
			IP: fmt.Sprintf("10.20.%d.%d", i/250, i%250+1), State: 3, LCM: 3, Time: t0}
	}
	return out
}

// hookRun is what a series of hook processes did.
type hookRun struct {
	asked     float64 // runs per second asked for
	start     time.Time
	lastExit  time.Time
	outcomes  map[string]int // the word of each run's stderr line: published, duplicate, spooled
	failures  []string       // runs that exited non-zero or said anything else
	cpu       time.Duration  // user+system CPU of every hook process
	launched  int
	maxAtOnce int
	spoolWhy  []string // the first and the last spooled line
}

// achieved is the rate at which hooks were started.
func (r *hookRun) achieved() float64 {
	return float64(r.launched) / r.lastExit.Sub(r.start).Seconds()
}

// runHooks runs the real vmglue-hook once per VM, as HEM runs it for a
// RUNNING VM (stdin: base64 XML and the word), started at rate per second
// with at most maxInFlight at once: when the machine cannot keep up, the
// rate achieved is lower and hookRun says so. at[i] runs (in this
// goroutine) just before hook i starts: the case's faults.
func runHooks(env []string, list []testenv.OneVM, rate float64, maxInFlight int, at map[int]func()) *hookRun {
	r := &hookRun{asked: rate, outcomes: map[string]int{}}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	sem := make(chan struct{}, maxInFlight)
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	r.start = time.Now()
	for i, v := range list {
		if f := at[i]; f != nil {
			f()
		}
		<-tick.C
		sem <- struct{}{}
		r.maxAtOnce = max(r.maxAtOnce, len(sem))
		r.launched++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cmd, stderr := hookCmd(env, v, "running")
			err := cmd.Run()
			line := strings.TrimSpace(stderr.String())
			mu.Lock()
			defer mu.Unlock()
			r.lastExit = time.Now()
			if cmd.ProcessState != nil {
				r.cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			}
			word := ""
			if f := strings.Fields(strings.TrimPrefix(line, "vmglue-hook: ")); len(f) > 0 {
				word = f[0]
			}
			switch {
			case err != nil, word != "published" && word != "duplicate" && word != "spooled":
				r.failures = append(r.failures, fmt.Sprintf("%s: %v: %s", v.Name, err, line))
			default:
				r.outcomes[word]++
			}
			if word == "spooled" {
				if len(r.spoolWhy) < 2 {
					r.spoolWhy = append(r.spoolWhy, line)
				} else {
					r.spoolWhy[1] = line
				}
			}
		}()
	}
	wg.Wait()
	return r
}

// hookCmd is one run of the hook for v's state change word, as HEM runs
// it (stdin: the base64 VM XML and the word); stderr gets its line.
func hookCmd(env []string, v testenv.OneVM, word string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.Command(hookBin)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(testenv.HookStdin(testenv.OneVMXML(v), word))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	return cmd, &stderr
}

// hookOnce runs the hook once; it must publish. It returns its line.
func hookOnce(t *testing.T, env []string, v testenv.OneVM, word string) string {
	t.Helper()
	cmd, stderr := hookCmd(env, v, word)
	err := cmd.Run()
	line := strings.TrimSpace(stderr.String())
	if err != nil || !strings.HasPrefix(line, "vmglue-hook: published ") {
		t.Fatalf("hook %s of %s: %v: %s", word, v.Name, err, line)
	}
	return line
}

// runningEvent is the event the hook makes of v's RUNNING (its id is
// deterministic: cloud, VM, state, time).
func runningEvent(t *testing.T, v testenv.OneVM) eventbus.Event {
	t.Helper()
	ev, err := opennebula.ParseHookInput(testenv.HookStdin(testenv.OneVMXML(v), "running"), nil, "one", nil)
	if err != nil {
		t.Fatalf("event of %s: %v", v.Name, err)
	}
	return ev
}

// flushSpool runs `vmglue-hook -flush` (the vmglue-spool-flush timer's
// command) until the spool directory holds no event; it returns the runs.
func flushSpool(t *testing.T, env []string, dir string) int {
	t.Helper()
	runs := 0
	testenv.WaitFor(t, 2*time.Minute, "the hook spool flushed", func() bool {
		if testenv.Spooled(t, dir) == 0 {
			return true
		}
		runs++
		cmd := exec.Command(hookBin, "-flush")
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("flush run %d: %v: %s", runs, err, out)
		}
		return testenv.Spooled(t, dir) == 0
	})
	return runs
}

// publishBurst publishes one RUNNING event per VM, as fast as the bus takes
// them, through the delivery of the resident sources (one connection to
// every node's URL); every event must be stored. at[i] runs just before
// event i is published. It returns the ids.
func publishBurst(t *testing.T, urls string, list []testenv.OneVM, at map[int]func()) []string {
	t.Helper()
	p, err := delivery.Open(delivery.Options{Conn: eventbus.ConnOptions{URL: urls}, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatalf("open delivery: %v", err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	testenv.WaitFor(t, 30*time.Second, "burst publisher connected", p.Connected)
	ids := make([]string, len(list))
	for i, v := range list {
		if f := at[i]; f != nil {
			f()
		}
		ev := runningEvent(t, v)
		if r := p.Publish(ctx, &ev); r.Outcome != delivery.Published {
			t.Fatalf("burst event %d (%s): %s: %v", i, v.Name, r.Outcome, r.Err)
		}
		ids[i] = ev.ID
	}
	return ids
}
