package faults

import (
	"testing"
	"time"

	"github.com/vmglue/vmglue/internal/testenv"
)

// Hooks at a fixed rate while the node leading the event stream is
// SIGKILLed (a third into the run) and restarted on the same store (at two
// thirds): each hook publishes to whichever node answers or spools; the
// spool is flushed at the end as the vmglue-spool-flush timer does. Every
// event stored once, every VM's records right, nothing applied twice.
func testNATSNodeKill(t *testing.T) {
	s := newStack(t, "debug")
	s.startServe(t, "A")
	s.startServe(t, "B")
	n := max(int(*rate*duration.Seconds()), 3)
	list := vms(n)
	spool := t.TempDir()
	env := s.hookEnv(spool)

	victim := -1
	var killed, restarted time.Time
	healthy := make(chan time.Time, 1)
	faults := map[int]func(){
		n / 3: func() {
			victim = s.streamLeader(t)
			s.cluster.Kill(t, victim)
			killed = time.Now()
		},
		2 * n / 3: func() {
			s.cluster.Restart(t, victim)
			restarted = time.Now()
			go func() {
				// Healthy: the node runs and its streams are current again.
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); <-tick.C {
					if s.cluster.Healthy(victim) {
						healthy <- time.Now()
						return
					}
				}
				healthy <- time.Time{}
			}()
		},
	}
	r := runHooks(env, list, *rate, 64, faults)
	if len(r.failures) > 0 {
		t.Fatalf("%d of %d hook runs failed, first: %s", len(r.failures), n, r.failures[0])
	}
	for _, line := range r.spoolWhy {
		t.Logf("spooled: %s", line)
	}
	flushes := flushSpool(t, env, spool)

	stored, lost, dups := storedOnce(t, s.js, eventIDs(t, list), 2*time.Minute)
	want := wantZones(list)
	converged := awaitZones(t, s.bind, want, time.Minute+*duration)
	extra := duplicateChanges(t, s.bind, want)
	back := <-healthy
	if back.IsZero() {
		t.Fatalf("nats-server %s not healthy 2 min after its restart", s.cluster.Nodes[victim].Name)
	}
	if lost != 0 || dups != 0 {
		t.Errorf("events: %d lost, %d stored more than once", lost, dups)
	}
	row("nats-node-kill: %d hook runs asked at %.0f/s, started at %.1f/s (at most %d at once, %.1f ms CPU each); "+
		"published %d, spooled %d (sent by %d flush runs), stored %d, lost %d, duplicates %d; "+
		"DNS changes applied twice %d; stream leader %s down %.1f s, current %.1f s after its restart; "+
		"zones converged %.1f s after it returned, %.1f s after the last hook",
		n, *rate, r.achieved(), r.maxAtOnce, ms(r.cpu)/float64(n),
		r.outcomes["published"], r.outcomes["spooled"], flushes, stored, lost, dups,
		extra, s.cluster.Nodes[victim].Name, restarted.Sub(killed).Seconds(), back.Sub(restarted).Seconds(),
		converged.Sub(restarted).Seconds(), converged.Sub(r.lastExit).Seconds())
}

// eventIDs are the ids of the RUNNING events of list.
func eventIDs(t *testing.T, list []testenv.OneVM) []string {
	t.Helper()
	ids := make([]string, len(list))
	for i, v := range list {
		ids[i] = runningEvent(t, v).ID
	}
	return ids
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
