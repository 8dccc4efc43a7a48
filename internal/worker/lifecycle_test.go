package worker_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

func TestNATSRestartLosesNothing(t *testing.T) {
	h, m := start(t, nil)
	first := testVM("a")
	h.Publish(first)
	h.WaitIdle()
	addr := strings.TrimPrefix(h.Server.URL, "nats://")
	h.Server.Stop()
	h.Eventually("client disconnected", func() bool { return !h.NC.IsConnected() })
	s := natstest.StartIn(t, h.Server.StoreDir, addr)
	h.Server = s
	h.Eventually("client reconnected", h.NC.IsConnected)
	var vms []eventbus.VM
	for _, id := range []string{"b", "c", "d"} {
		vm := testVM(id)
		vms = append(vms, vm)
		h.Publish(vm)
	}
	h.WaitIdle()
	for _, vm := range append(vms, first) {
		if got := m.observe(&vm); len(got) != 2 {
			t.Errorf("vm %s after restart: %v", vm.ID, got)
		}
	}
}

func TestShutdownLeavesInFlightForRedelivery(t *testing.T) {
	m := newMemTarget("mem")
	h := workertest.NewHarness(t, m.Name())
	o := workertest.TestOptions()
	o.ShutdownTimeout = 50 * time.Millisecond
	blocked := make(chan struct{}, 1)
	m.setHook(func(ctx context.Context, _ *eventbus.VM) error {
		blocked <- struct{}{}
		<-ctx.Done() // a long apply that only the shutdown cuts
		return ctx.Err()
	})
	h.StartRunner(m, o)
	vm := testVM("s")
	h.Publish(vm)
	<-blocked
	stopped := make(chan struct{})
	go func() { h.StopAll(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the shutdown timeout")
	}
	// Cut with nothing reported: what it was to create may exist, so it
	// stays pending (ours, unverified), with the error.
	if rec := h.Record(&vm); rec == nil || len(rec.Applied) != 0 || len(rec.Pending) != 2 || rec.Error == "" {
		t.Fatalf("record after a cut apply: %+v, want the 2 wanted objects pending and the error", rec)
	}
	m.setHook(nil)
	h.StartRunner(m, workertest.TestOptions()) // the next instance
	h.WaitIdle()
	if got := m.observe(&vm); len(got) != 2 {
		t.Fatalf("not converged after redelivery: %v", got)
	}
}

func TestLeaseHeldByAnotherInstance(t *testing.T) {
	h, m := start(t, nil)
	ctx := context.Background()
	locks, err := h.JS.KeyValue(ctx, eventbus.BucketLocks)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := locks.Create(ctx, "mem.one.5", []byte("other-instance")); err != nil {
		t.Fatal(err)
	}
	vm := testVM("5")
	h.Publish(vm)
	var (
		cons jetstream.Consumer
		info *jetstream.ConsumerInfo
	)
	h.Eventually("event delivered", func() bool {
		if cons, err = h.JS.Consumer(ctx, eventbus.StreamEvents, worker.ConsumerName("mem")); err != nil {
			return false
		}
		info, err = cons.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 1
	})
	if got := m.observe(&vm); len(got) != 0 {
		t.Fatalf("applied while another instance holds the lease: %v", got)
	}
	if err := locks.Delete(ctx, "mem.one.5"); err != nil {
		t.Fatal(err)
	}
	h.WaitIdle()
	if got := m.observe(&vm); len(got) != 2 {
		t.Fatalf("not converged after the lease was freed: %v", got)
	}
	if info, err = cons.Info(ctx); err != nil || info.NumRedelivered != 0 {
		t.Fatalf("waiting for the lease consumed deliveries: %+v %v", info, err)
	}
	// The release is sent without waiting for its answer: await it.
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	for _, err := locks.Get(wctx, "mem.one.5"); !eventbus.IsNoKey(err); _, err = locks.Get(wctx, "mem.one.5") {
		if wctx.Err() != nil {
			t.Fatal("lease not released after the converge")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestResyncGetsAppliedRecords(t *testing.T) {
	h, m := start(t, func(o *worker.Options) { o.ResyncInterval = 20 * time.Millisecond })
	vm := testVM("r")
	h.Publish(vm)
	h.WaitIdle()
	h.Eventually("resync with the applied VM", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, r := range m.resyncs {
			if r["one.r"]["A webr"] == "10.0.0.1" {
				return true
			}
		}
		return false
	})
}

// TriggerResync runs a Resync at once, with the periodic one disabled;
// triggers while one is pending merge into it.
func TestTriggerResync(t *testing.T) {
	m := newMemTarget("mem")
	h := workertest.NewHarness(t, m.Name())
	o := workertest.TestOptions()
	o.ResyncInterval = -1
	r := h.StartRunner(m, o)
	vm := testVM("tr")
	h.Publish(vm)
	h.WaitIdle()
	resyncs := func() int { m.mu.Lock(); defer m.mu.Unlock(); return len(m.resyncs) }
	if n := resyncs(); n != 0 {
		t.Fatalf("%d resyncs without a trigger, periodic resync disabled", n)
	}
	for range 3 {
		r.TriggerResync()
	}
	h.Eventually("resync after the trigger", func() bool { return resyncs() >= 1 })
	m.mu.Lock()
	got := m.resyncs[0]["one.tr"]
	m.mu.Unlock()
	if got["A webtr"] != "10.0.0.1" {
		t.Fatalf("resync got %v", got)
	}
	r.TriggerResync()
	h.Eventually("a later trigger resyncs again", func() bool { return resyncs() >= 2 })
}

func TestSecondRunIsRefused(t *testing.T) {
	m := newMemTarget("mem")
	h := workertest.NewHarness(t, m.Name())
	r := h.StartRunner(m, workertest.TestOptions())
	h.Eventually("first run started", func() bool {
		_, err := h.JS.Consumer(context.Background(), eventbus.StreamEvents, worker.ConsumerName("mem"))
		return err == nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Run(ctx); err == nil {
		t.Fatal("second Run of the same Runner succeeded")
	}
}

func TestTwoCrashesKeepUnverified(t *testing.T) {
	m := newMemTarget("mem")
	spy := workertest.NewSpy(m)
	spy.Inject(workertest.CrashAfter, workertest.CrashBefore)
	h := workertest.NewHarness(t, m.Name())
	h.StartRunner(spy, workertest.TestOptions())
	vm := testVM("x")
	h.Publish(vm)
	h.WaitIdle()
	want, _ := m.Desired(&vm)
	calls := spy.Calls()
	if len(calls) != 3 || !maps.Equal(calls[2].Unverified, want) || !maps.Equal(calls[2].Have, want) {
		t.Fatalf("calls %+v, want a third call with every object unverified", calls)
	}
	if got := m.observe(&vm); !maps.Equal(got, want) {
		t.Fatalf("target holds %v, want %v", got, want)
	}
	if rec := h.Record(&vm); rec == nil || len(rec.Pending) != 0 || !maps.Equal(rec.Applied, want) || rec.Error != "" {
		t.Fatalf("record %+v", rec)
	}
}

// An event republished for one worker (HeaderForWorker) is acked unseen by
// the others.
func TestEventForAnotherWorkerIsSkipped(t *testing.T) {
	h, m := start(t, nil)
	publishFor := func(vm eventbus.VM, to string) {
		t.Helper()
		ev, err := eventbus.NewEvent(vm)
		if err != nil {
			t.Fatal(err)
		}
		msg := nats.NewMsg(ev.NATSSubject())
		if msg.Data, err = ev.Marshal(); err != nil {
			t.Fatal(err)
		}
		msg.Header.Set(worker.HeaderForWorker, to)
		if _, err := h.JS.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	other, mine := testVM("fo"), testVM("fm")
	publishFor(other, "dns")
	publishFor(mine, "mem")
	h.WaitIdle()
	if got := m.observe(&other); len(got) != 0 {
		t.Errorf("event for another worker converged: %v", got)
	}
	if rec := h.Record(&other); rec != nil {
		t.Errorf("event for another worker recorded: %+v", rec)
	}
	if got := m.observe(&mine); len(got) != 2 {
		t.Errorf("event for this worker not converged: %v", got)
	}
}

// An event a stopping runner holds parked (a requeue, a teardown wait) is
// handed back at once: the next instance converges it long before the
// ack wait would bring it back. Each instance has its own connection,
// closed as soon as it stops, as a serve process does: the nak used to
// race the withdrawal of the runner's pull requests and get lost now and
// then, so the test runs several rounds.
func TestShutdownHandsParkedEventsBackAtOnce(t *testing.T) {
	m := newMemTarget("mem")
	h := workertest.NewHarness(t, m.Name())
	o := workertest.TestOptions()
	o.AckWait = time.Minute
	var parked atomic.Bool
	m.setHook(func(context.Context, *eventbus.VM) error {
		if parked.Load() {
			return worker.Requeue(time.Hour, "waiting")
		}
		return nil
	})
	// instance runs a runner on a connection of its own; stop closes it
	// right after Run returns.
	instance := func() (stop func()) {
		nc, js := natstest.Connect(t, h.Server.URL)
		r, err := worker.New(js, m, o, workertest.Logger(), h.Metrics)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		<-r.Started()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
			nc.Close()
		}
	}
	for i := range 8 {
		vm := testVM(fmt.Sprintf("p%d", i))
		parked.Store(true)
		stop := instance()
		h.Publish(vm)
		h.Eventually("event parked", func() bool { return metric(t, h, "vmglue_worker_events_total", "result", "requeue") > float64(i) })
		stop()
		parked.Store(false)
		t0 := time.Now()
		stop = instance()
		h.Eventually("converged by the next instance", func() bool { return len(m.observe(&vm)) == 2 })
		if d := time.Since(t0); d > o.AckWait/2 {
			t.Fatalf("round %d: the parked event came back after %s, not at once", i, d)
		}
		stop()
	}
}
