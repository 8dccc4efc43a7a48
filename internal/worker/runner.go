package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
)

// Resyncer is implemented by a Target that must check its objects
// periodically, e.g. the HAProxy worker re-adding servers that a reload lost.
// Resync gets every applied registry entry of the worker, keyed
// "<cloud>.<vmid>". No converge of this Runner runs during a Resync.
type Resyncer interface {
	Resync(ctx context.Context, applied map[string]Objects) error
}

// ConsumerName returns the durable consumer of a worker: "vmglue-<name>".
func ConsumerName(worker string) string { return "vmglue-" + worker }

// Runner runs one worker type: it consumes every event, converges each VM
// with the Target and settles the event. Create it with New.
type Runner struct {
	js       jetstream.JetStream
	t        Target
	name     string
	opts     Options
	log      zerolog.Logger
	m        *metrics
	snaps    *Snapshots
	reg      *Registry
	leases   *leases
	resyncer Resyncer
	// after are the workers that must settle a VM first, by snapshot kind
	// (After); set before Run, read-only afterwards.
	after map[string][]*Runner
	// waiters are the Runners ordered after this one (After): a converge
	// of this one wakes their parked waits for the VM.
	waiters  []*Runner
	resyncMu sync.RWMutex  // converges read-lock, Resync write-locks
	resyncCh chan struct{} // TriggerResync: a resync is wanted now
	sem      chan struct{}

	mu       sync.Mutex
	started  bool
	stopping bool
	held     map[uint64]*job   // every un-acked message, by stream sequence
	queues   map[string][]*job // waiting messages per VM key
	active   map[string]bool   // VM keys with a drain goroutine
	ready    chan string       // VM keys for the drainers
	running  sync.WaitGroup    // converges in progress
	stopCh   chan struct{}
	// startedCh is closed once the consumer is consuming.
	startedCh chan struct{}
	workCtx   context.Context
}

// job is one event message held by the runner.
type job struct {
	msg   jetstream.Msg // latest delivery; guarded by Runner.mu
	seq   uint64
	key   string // "<cloud>.<vmid>"
	ev    eventbus.Event
	timer *time.Timer // set while parked
	wait  *orderWait  // set while parked for the teardown order
	// verify asks the converge to read the target back first (a
	// replayed event, a periodic verification) and repair what drifted.
	verify bool
}

// New checks the target and options, opens the buckets and registers the
// metrics on reg (a nil reg keeps them private).
func New(js jetstream.JetStream, t Target, opts Options, log zerolog.Logger, reg prometheus.Registerer) (*Runner, error) {
	name := t.Name()
	if !eventbus.ValidToken(name) {
		return nil, fmt.Errorf("worker name %q: use letters, digits, '-' and '_'", name)
	}
	opts.SetDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("worker %s options: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snaps, err := OpenSnapshots(ctx, js)
	if err != nil {
		return nil, err
	}
	regy, err := OpenRegistry(ctx, js, name)
	if err != nil {
		return nil, err
	}
	locks, err := js.KeyValue(ctx, eventbus.BucketLocks)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", eventbus.BucketLocks, err)
	}
	m, err := newMetrics(reg, name)
	if err != nil {
		return nil, err
	}
	r := &Runner{
		js: js, t: t, name: name, opts: opts, m: m, snaps: snaps, reg: regy,
		log:    log.With().Str("worker", name).Logger(),
		leases: &leases{kv: locks, nc: js.Conn(), worker: name, instance: opts.InstanceID},
		sem:    make(chan struct{}, opts.Concurrency),
		held:   map[uint64]*job{}, queues: map[string][]*job{}, active: map[string]bool{},
		ready:  make(chan string, opts.MaxAckPending),
		stopCh: make(chan struct{}), resyncCh: make(chan struct{}, 1), startedCh: make(chan struct{}),
	}
	r.resyncer, _ = t.(Resyncer)
	return r, nil
}

// Registry returns the worker's ownership registry.
func (r *Runner) Registry() *Registry { return r.reg }

// Snapshots returns the snapshot store the runner merges into.
func (r *Runner) Snapshots() *Snapshots { return r.snaps }

// consumerConfig is the durable consumer of the worker. MaxDeliver is
// unlimited on the server: the runner counts deliveries itself and
// dead-letters, so that no event is dropped silently.
func (r *Runner) consumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerName(r.name),
		Description:   "vmglue worker " + r.name,
		FilterSubject: eventbus.SubjectAll,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       r.opts.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: r.opts.MaxAckPending,
	}
}

// Started is closed once Run consumes: its durable consumer exists and
// messages flow. It stays open if Run fails to start.
func (r *Runner) Started() <-chan struct{} { return r.startedCh }

// Run consumes events until ctx is done, then drains: it stops taking
// messages, lets converges in progress finish within ShutdownTimeout (then
// cancels their context), and hands every message it still holds back to
// JetStream for redelivery. A Runner runs once.
func (r *Runner) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errors.New("worker runner already started")
	}
	r.started = true
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	r.workCtx = workCtx
	r.mu.Unlock()

	cons, err := r.js.CreateOrUpdateConsumer(ctx, eventbus.StreamEvents, r.consumerConfig())
	if err != nil && ctx.Err() != nil {
		return nil // stopped while starting
	}
	if err != nil {
		return fmt.Errorf("create consumer %s: %w", ConsumerName(r.name), err)
	}
	cc, err := cons.Consume(r.receive,
		jetstream.PullMaxMessages(min(2*r.opts.Concurrency, r.opts.MaxAckPending)),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			r.log.Warn().Err(err).Msg("consume")
		}))
	if err != nil {
		return fmt.Errorf("consume %s: %w", ConsumerName(r.name), err)
	}
	var bg sync.WaitGroup
	r.drainers(&bg) // what receive queued meanwhile waits in r.ready
	bg.Go(r.keepAlive)
	bg.Go(func() { r.resyncLoop(ctx) })
	bg.Go(func() { r.verifyLoop(ctx) })
	r.log.Info().Str("consumer", ConsumerName(r.name)).Str("instance", r.opts.InstanceID).
		Int("concurrency", r.opts.Concurrency).Bool("verifies", r.CanVerify()).Dur("verify_interval", r.opts.VerifyInterval).Msg("worker started")
	close(r.startedCh)

	<-ctx.Done()
	cc.Stop()
	// The naks of drain must reach the server after its pull requests are
	// gone: a nak'ed event is redelivered at once, to a pull request that
	// is still there if the unsubscribe is not through yet (lost, back
	// only after AckWait: a restarted serve would sit idle that long).
	select {
	case <-cc.Closed():
	case <-time.After(bookkeepingTimeout):
	}
	r.mu.Lock()
	r.stopping = true
	close(r.stopCh)
	r.mu.Unlock()
	r.drain(cancelWork)
	bg.Wait()
	r.log.Info().Msg("worker stopped")
	return nil
}

// drain waits for the converges in progress, cancels them after
// ShutdownTimeout, and naks every message not being converged.
func (r *Runner) drain(cancelWork context.CancelFunc) {
	done := make(chan struct{})
	go func() { r.running.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(r.opts.ShutdownTimeout):
		r.log.Warn().Dur("timeout", r.opts.ShutdownTimeout).Msg("shutdown timeout: cancelling converges in progress")
		cancelWork()
		select {
		case <-done:
		case <-time.After(bookkeepingTimeout):
			r.log.Error().Msg("converges ignore cancellation; their events will be redelivered")
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for seq, j := range r.held {
		if j.timer != nil {
			j.timer.Stop()
		}
		_ = j.msg.Nak() // redeliver now, to another instance if there is one
		delete(r.held, seq)
	}
	r.queues = map[string][]*job{}
}

// keepAlive tells JetStream every third of AckWait that each held message is
// in progress, so queued, parked and long converges are not redelivered.
func (r *Runner) keepAlive() {
	t := time.NewTicker(r.opts.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case <-r.stopCh:
			return
		case <-t.C:
		}
		r.mu.Lock()
		msgs := make([]jetstream.Msg, 0, len(r.held))
		for _, j := range r.held {
			msgs = append(msgs, j.msg)
		}
		r.mu.Unlock()
		for _, m := range msgs {
			_ = m.InProgress() // an already acked message or a lost connection: redelivery copes
		}
	}
}

// TriggerResync asks for a Resync of the target as soon as possible (its
// objects were lost: an HAProxy reload), without waiting for the next
// ResyncInterval. It does not block; triggers while one is pending merge.
// It does nothing for a target without Resync.
func (r *Runner) TriggerResync() {
	select {
	case r.resyncCh <- struct{}{}:
	default:
	}
}

// resyncLoop calls the target's Resync every ResyncInterval (when
// positive) and whenever TriggerResync asks for it.
func (r *Runner) resyncLoop(ctx context.Context) {
	if r.resyncer == nil {
		return
	}
	var tick <-chan time.Time
	if r.opts.ResyncInterval > 0 {
		t := time.NewTicker(r.opts.ResyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-r.resyncCh:
		}
		if err := r.resync(ctx); err != nil && ctx.Err() == nil {
			r.log.Error().Err(err).Msg("resync")
		}
	}
}

func (r *Runner) resync(ctx context.Context) error {
	r.resyncMu.Lock()
	defer r.resyncMu.Unlock()
	recs, err := r.reg.List(ctx)
	if err != nil {
		return err
	}
	applied := make(map[string]Objects, len(recs))
	for k, rec := range recs {
		applied[k] = maps.Clone(rec.Applied)
	}
	r.log.Debug().Int("vms", len(applied)).Msg("resync")
	if err := r.resyncer.Resync(ctx, applied); err != nil {
		return fmt.Errorf("resync %s: %w", r.name, err)
	}
	return nil
}
