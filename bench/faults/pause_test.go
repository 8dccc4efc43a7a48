package faults

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// The lease case of internal/serve's TestTwoServesPausedInstanceSendsNothing
// on the cluster: serve A takes VM 77's lease, records its intent and is
// SIGSTOPped while its DNS UPDATE waits in the batch, for longer than the lease's TTL; B
// converges the VM (the running event, then the delete, as JetStream
// redelivers them); after SIGCONT, A must send nothing: BIND's journal
// takes no change after the resume, and the zones end empty.
func testServePause(t *testing.T) {
	s := newStack(t, "debug", "    batch: {window: 1s}\n")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a := s.startServe(t, "A")
	reg, err := worker.OpenRegistry(ctx, s.js, "dns")
	if err != nil {
		t.Fatal(err)
	}

	v := testenv.OneVM{ID: 77, Name: "paused", IP: "10.0.0.77", State: 3, LCM: 3, Time: time.Now().Unix()}
	env := s.hookEnv(t.TempDir())
	hookOnce(t, env, v, "running")
	// A holds the lease and has recorded its intent: the UPDATE is next,
	// in the batch (1 s window).
	testenv.WaitFor(t, time.Minute, "serve A's intent for VM 77", func() bool {
		rec, _, err := reg.Get(ctx, "one.77")
		return err == nil && rec != nil && len(rec.Pending) > 0
	})
	a.signal(t, syscall.SIGSTOP)
	paused := time.Now()
	if got := s.bind.JournalChanges(t, forwardZone); len(got) != 0 {
		t.Fatalf("A's UPDATE was sent before the pause (%v): the case cannot show anything", got)
	}

	b := s.startServe(t, "B")
	v.State, v.LCM, v.Time = 6, 0, v.Time+60
	delID := strings.Fields(hookOnce(t, env, v, "done"))[2]
	testenv.WaitFor(t, 2*time.Minute, "B converged the delete", func() bool {
		rec, _, err := reg.Get(ctx, "one.77")
		return err == nil && rec != nil && rec.EventID == delID && len(rec.Pending) == 0 && len(rec.Applied) == 0
	})
	tookOver := time.Since(paused)
	if !strings.Contains(b.log.String(), delID) {
		t.Fatalf("the delete was not converged by B")
	}
	if tookOver < eventbus.LockTTL {
		t.Fatalf("B converged %s after the pause, before the lease's TTL %s: A's lease was not held", tookOver, eventbus.LockTTL)
	}

	journal := func() []string {
		return append(s.bind.JournalChanges(t, forwardZone), s.bind.JournalChanges(t, reverseZone)...)
	}
	before := len(journal())
	mark := len(a.log.String())
	a.signal(t, syscall.SIGCONT)
	resumed := time.Now()
	testenv.WaitFor(t, time.Minute, "A's converge settled after the resume", func() bool {
		return strings.Contains(a.log.String()[mark:], "converge failed")
	})
	settled := time.Since(resumed)
	idle(t, s.js)
	after := journal()
	changes := len(after) - before
	if changes != 0 {
		t.Errorf("BIND took %d changes after the resume (%q): the paused instance's UPDATE landed after its lease was lost", changes, after[before:])
	}
	awaitZones(t, s.bind, wantZones(nil), 10*time.Second)
	row("serve-pause: A SIGSTOPped %.1f s holding VM 77's lease (TTL %s) with its UPDATE batched; B converged the delete %.1f s after the pause (%d DNS changes); "+
		"after SIGCONT A's converge failed (lease lost) within %.2f s; DNS changes by A after the resume %d, zones hold no record of VM 77",
		resumed.Sub(paused).Seconds(), eventbus.LockTTL, tookOver.Seconds(), before, settled.Seconds(), changes)
}

// idle waits until the dns worker's consumer has nothing pending or in
// flight.
func idle(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	testenv.WaitFor(t, time.Minute, "dns consumer idle", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := js.Consumer(ctx, eventbus.StreamEvents, worker.ConsumerName("dns"))
		if err != nil {
			return false
		}
		i, err := c.Info(ctx)
		return err == nil && i.NumPending == 0 && i.NumAckPending == 0
	})
}
