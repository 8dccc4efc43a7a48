package serve_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/testenv"
)

// OpenNebula state numbers of the shutdown tests (hooks/opennebula/state.go).
const (
	stActive   = 3
	lcmBoot    = 2
	lcmRunning = 3
	lcmShut    = 12 // ACTIVE/SHUTDOWN
)

// transition returns v in STATE/LCM_STATE state/lcm, coming from the state
// v is in, as oned's state event documents say it (PREV_STATE,
// PREV_LCM_STATE). Nothing else changes: oned moves no timestamp and no
// HISTORY SEQ for a shutdown or its failure.
func transition(v testenv.OneVM, state, lcm int) testenv.OneVM {
	v.PrevState, v.PrevLCM = v.State, v.LCM
	v.State, v.LCM = state, lcm
	return v
}

// booted is v entering RUNNING from BOOT.
func booted(v testenv.OneVM) testenv.OneVM {
	v.State, v.LCM = stActive, lcmBoot
	return transition(v, stActive, lcmRunning)
}

// A shutdown that fails brings the VM back to RUNNING with a document
// identical to the RUNNING before it but for PREV_LCM_STATE (the A-B-A of
// issue 16). The return is a new transition: the server is back in its
// pool. A late copy of the SHUTDOWN event afterwards (onehook retry of the
// old template: a later run, so a later Seen), sent after the stream's
// duplicate window so that the stream stores it again, stays dropped by the
// snapshot store: the server keeps serving.
func TestLBShutdownFailedBackInPool(t *testing.T) {
	const window = time.Second // the smallest nats.stream.duplicate_window
	s := startLBConfig(t, 46, func(cfg *config.Config) { cfg.NATS.Stream.DuplicateWindow = window })
	s.vm = booted(s.vm)
	s.boot(t)

	shutdown := transition(s.vm, stActive, lcmShut)
	hook(t, s.in, t.TempDir(), shutdown, "stopping")
	testenv.WaitFor(t, 10*time.Second, "server drained and deleted", func() bool { return s.state(t) == "" })
	sentShutdown := time.Now()

	back := transition(shutdown, stActive, lcmRunning)
	hook(t, s.in, t.TempDir(), back, "running")
	testenv.WaitFor(t, 10*time.Second, "server back in the pool after the failed shutdown", s.serves)

	// The duplicate window is a duration on the server's clock: let it pass.
	time.Sleep(time.Until(sentShutdown.Add(window + 500*time.Millisecond)))
	hook(t, s.in, t.TempDir(), shutdown, "stopping") // onehook retry of the SHUTDOWN template
	_, js := s.in.connect(t)
	idle(t, js, "lb")
	if n := len(natstest.Events(t, js)); n != 4 {
		t.Fatalf("the stream holds %d events, want 4 (the late SHUTDOWN copy stored again): the test proves nothing", n)
	}
	if !s.serves() {
		t.Fatalf("a late copy of the SHUTDOWN event took the running VM out of its pool: %q", s.state(t))
	}
	if snap := snapshot(t, js, "one.46"); snap.Kind != eventbus.KindRunning || snap.PrevLCMState != "SHUTDOWN" {
		t.Fatalf("snapshot %s from %s/%s, want running from ACTIVE/SHUTDOWN", snap.Kind, snap.PrevState, snap.PrevLCMState)
	}
}

// The rolling deploy operators run by hand, done by hooks under steady
// traffic: two old VMs serve, a new one boots and joins, then each old one
// shuts down (its SHUTDOWN hook: drained and out of the pool while the
// guest stops) and is deleted (DONE). Not a single request fails, and in
// the end the pool holds only the new VM's server.
func TestLBRollingDeploy(t *testing.T) {
	s := startLB(t, 60)
	old2 := testenv.StartHTTPBackend(t, "vm61")
	fresh := testenv.StartHTTPBackend(t, "vm62")
	s.vm = booted(s.vm)
	vm61, vm62 := booted(lbVM(61, old2)), booted(lbVM(62, fresh))
	s.boot(t)
	hook(t, s.in, t.TempDir(), vm61, "running")
	testenv.WaitFor(t, 10*time.Second, "vm61 in the pool", func() bool { return s.stateOf(t, "web/one-61") != "" })

	// Steady traffic: 4 clients, each request holding its server 300 ms, so
	// that each drain finds requests in flight.
	tr := startTraffic(s.fronted+"/slow?ms=300", 4)
	served := func(b *testenv.HTTPBackend) func() bool {
		n := b.Served()
		return func() bool { return b.Served() > n }
	}
	hook(t, s.in, t.TempDir(), vm62, "running")
	testenv.WaitFor(t, 10*time.Second, "vm62 takes traffic", served(fresh))
	backends := map[int]*testenv.HTTPBackend{60: s.be, 61: old2}
	left := map[int]int64{} // requests each old VM had answered when it left its pool
	for _, v := range []testenv.OneVM{s.vm, vm61} {
		name := fmt.Sprintf("web/one-%d", v.ID)
		shutdown := transition(v, stActive, lcmShut)
		hook(t, s.in, t.TempDir(), shutdown, "stopping")
		testenv.WaitFor(t, 20*time.Second, name+" drained and out of the pool while it shuts down",
			func() bool { return s.stateOf(t, name) == "" })
		left[v.ID] = backends[v.ID].Served()
		hook(t, s.in, t.TempDir(), done(shutdown), "done")
	}
	_, js := s.in.connect(t)
	idle(t, js, "lb")
	for id, n := range left {
		if got := backends[id].Served(); got != n {
			t.Errorf("vm%d answered %d requests after it left its pool while shutting down", id, got-n)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "vm62 still takes traffic", served(fresh))
	ok, fail, failures := tr.stop()
	if fail > 0 || ok == 0 {
		t.Fatalf("%d requests ok, %d failed during the rolling deploy: %v", ok, fail, failures)
	}
	t.Logf("rolling deploy (SHUTDOWN then DONE hooks): %d requests, 0 failed; vm60 %d, vm61 %d, vm62 %d",
		ok, s.be.Served(), old2.Served(), fresh.Served())
	if got := serversOf(t, s, "web"); !slices.Equal(got, []string{"one-62"}) {
		t.Fatalf("servers of backend web after the deploy: %v, want [one-62]", got)
	}
	if code, body := get(context.Background(), s.fronted+"/"); code != http.StatusOK || body != "vm62" {
		t.Fatalf("after the deploy: %d %q, want only vm62", code, body)
	}
}

// traffic is steady HTTP load: clients requesting one URL in a loop, each
// response counted.
type traffic struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex
	ok, fail int
	failures []string // the first few
}

func startTraffic(url string, clients int) *traffic {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &traffic{cancel: cancel}
	for range clients {
		tr.wg.Go(func() {
			for ctx.Err() == nil {
				code, body := get(context.Background(), url)
				tr.mu.Lock()
				if code == http.StatusOK {
					tr.ok++
				} else {
					tr.fail++
					if len(tr.failures) < 5 {
						tr.failures = append(tr.failures, fmt.Sprintf("%d %q", code, body))
					}
				}
				tr.mu.Unlock()
			}
		})
	}
	return tr
}

// stop ends the traffic, lets the requests in flight finish, and returns
// the counts.
func (tr *traffic) stop() (ok, fail int, failures []string) {
	tr.cancel()
	tr.wg.Wait()
	return tr.ok, tr.fail, tr.failures
}

// serversOf lists the names of the servers of backend be in HAProxy's
// "show servers state".
func serversOf(t *testing.T, s *lbSetup, be string) []string {
	t.Helper()
	var names []string
	for _, l := range strings.Split(s.h.Command("show servers state "+be), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[1] == be {
			names = append(names, f[3])
		}
	}
	return names
}
