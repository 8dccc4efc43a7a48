package workertest

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/worker"
)

// Harness runs worker.Runners against a real embedded nats-server.
type Harness struct {
	T         testing.TB
	Server    *natstest.Server
	NC        *nats.Conn
	JS        jetstream.JetStream
	Worker    string
	Registry  *worker.Registry
	Snapshots *worker.Snapshots
	Metrics   *prometheus.Registry

	mu      sync.Mutex
	runners []*running
}

type running struct {
	cancel context.CancelFunc
	done   chan error
}

// TestOptions are runtime options for tests: short backoff, lease retry
// and ack wait, so that retries take milliseconds.
func TestOptions() worker.Options {
	return worker.Options{
		Concurrency:     8,
		AckWait:         3 * time.Second,
		MaxDeliver:      10,
		Backoff:         worker.Backoff{Base: 10 * time.Millisecond, Max: 100 * time.Millisecond, Jitter: 0.2},
		ShutdownTimeout: 5 * time.Second,
		ResyncInterval:  -1,
		LockRetry:       10 * time.Millisecond,
	}
}

// NewHarness starts a provisioned nats-server in a fresh directory and a
// client that reconnects forever (so the server can be restarted).
func NewHarness(t testing.TB, workerName string) *Harness {
	t.Helper()
	s := natstest.Start(t)
	nc, err := eventbus.Connect(eventbus.ConnOptions{URL: s.URL, Name: "workertest"}, true)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg, err := worker.OpenRegistry(ctx, js, workerName)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := worker.OpenSnapshots(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	h := &Harness{T: t, Server: s, NC: nc, JS: js, Worker: workerName, Registry: reg, Snapshots: snaps, Metrics: prometheus.NewRegistry()}
	t.Cleanup(h.StopAll)
	return h
}

// Logger is silent unless VMGLUE_TEST_LOG is set (to a zerolog level).
func Logger() zerolog.Logger {
	lvl, err := zerolog.ParseLevel(os.Getenv("VMGLUE_TEST_LOG"))
	if os.Getenv("VMGLUE_TEST_LOG") == "" || err != nil {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(lvl).With().Timestamp().Logger()
}

// StartRunner starts one instance of the worker; StopAll (run at cleanup)
// stops it and fails the test if Run returned an error.
func (h *Harness) StartRunner(t worker.Target, opts worker.Options) *worker.Runner {
	h.T.Helper()
	r := h.NewRunner(t, opts)
	h.Run(r)
	return r
}

// NewRunner builds a Runner for t on the harness's server without
// starting it (to declare its order with Runner.After first); Run starts
// it.
func (h *Harness) NewRunner(t worker.Target, opts worker.Options) *worker.Runner {
	h.T.Helper()
	r, err := worker.New(h.JS, t, opts, Logger(), h.Metrics)
	if err != nil {
		h.T.Fatalf("worker.New: %v", err)
	}
	return r
}

// Run starts r; StopAll (run at cleanup) stops it and fails the test if
// Run returned an error. It returns a function that stops r alone and
// waits for its Run to return.
func (h *Harness) Run(r *worker.Runner) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	rn := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { rn.done <- r.Run(ctx) }()
	h.mu.Lock()
	h.runners = append(h.runners, rn)
	h.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			if err := <-rn.done; err != nil {
				h.T.Errorf("worker run: %v", err)
			}
			rn.done <- nil // StopAll reads it again
		})
	}
}

// StopAll stops every runner and waits for Run to return.
func (h *Harness) StopAll() {
	h.mu.Lock()
	rs := h.runners
	h.runners = nil
	h.mu.Unlock()
	for _, r := range rs {
		r.cancel()
	}
	for _, r := range rs {
		select {
		case err := <-r.done:
			if err != nil {
				h.T.Errorf("worker run: %v", err)
			}
		case <-time.After(30 * time.Second):
			h.T.Errorf("worker run did not return 30s after cancel")
		}
	}
}

// Publish publishes the event of a snapshot, as a source would.
func (h *Harness) Publish(vm eventbus.VM) eventbus.Event {
	h.T.Helper()
	ev, err := eventbus.NewEvent(vm)
	if err != nil {
		h.T.Fatalf("new event: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := eventbus.Publish(ctx, h.JS, &ev); err != nil {
		h.T.Fatalf("publish: %v", err)
	}
	return ev
}

// Replay publishes an event again without its dedup id and with the header
// eventbus.HeaderReplay, as `vmglue replay` does: the stream stores it a
// second time, and the runner converges it with verification.
func (h *Harness) Replay(ev eventbus.Event) {
	h.T.Helper()
	b, err := ev.Marshal()
	if err != nil {
		h.T.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m := nats.NewMsg(ev.NATSSubject())
	m.Data = b
	m.Header.Set(eventbus.HeaderReplay, "1")
	if _, err := h.JS.PublishMsg(ctx, m); err != nil {
		h.T.Fatalf("replay: %v", err)
	}
}

// Eventually polls cond every 5ms until it holds or 20s pass.
func (h *Harness) Eventually(what string, cond func() bool) {
	h.T.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.T.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

// WaitIdle waits until the worker's consumer has delivered every event of
// the stream and every delivery is settled (acked or terminated).
func (h *Harness) WaitIdle() {
	h.T.Helper()
	h.Eventually("worker "+h.Worker+" idle", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := h.JS.Consumer(ctx, eventbus.StreamEvents, worker.ConsumerName(h.Worker))
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		if err != nil || info.NumPending != 0 || info.NumAckPending != 0 {
			return false
		}
		st, err := h.JS.Stream(ctx, eventbus.StreamEvents)
		if err != nil {
			return false
		}
		// A consumer still initialising reports nothing pending: also
		// require that everything up to the stream's last message is settled.
		return info.AckFloor.Stream >= st.CachedInfo().State.LastSeq
	})
}

// Record returns the worker's registry record of a VM (nil if none).
func (h *Harness) Record(vm *eventbus.VM) *worker.Record {
	h.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, _, err := h.Registry.Get(ctx, vm.Key())
	if err != nil {
		h.T.Fatalf("registry: %v", err)
	}
	return rec
}

// DeadLetter is one message of the dead-letter stream.
type DeadLetter struct {
	Subject string
	Header  nats.Header
	worker.DeadLetter
}

// DeadLetters returns every message of the dead-letter stream.
func (h *Harness) DeadLetters() []DeadLetter {
	h.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := h.JS.Stream(ctx, eventbus.StreamDLQ)
	if err != nil {
		h.T.Fatalf("dlq stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		h.T.Fatalf("dlq info: %v", err)
	}
	var out []DeadLetter
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted
		}
		if err != nil {
			h.T.Fatalf("get dead letter %d: %v", seq, err)
		}
		d := DeadLetter{Subject: m.Subject, Header: m.Header}
		if err := json.Unmarshal(m.Data, &d.DeadLetter); err != nil {
			h.T.Fatalf("dead letter %d: %v", seq, err)
		}
		out = append(out, d)
	}
	return out
}
