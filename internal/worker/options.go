package worker

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"time"
)

// Options tune a Runner. Zero values take the defaults below.
type Options struct {
	// Concurrency is how many VMs are converged in parallel (default 64).
	Concurrency int
	// AckWait is how long JetStream waits for an ack before it redelivers
	// (default 30s). The runner keeps every message it holds alive with
	// in-progress acks, so a long Apply or a queued message is not redelivered.
	AckWait time.Duration
	// MaxDeliver is how many deliveries of an event may fail before it is
	// dead-lettered with reason "max deliveries" (default 20). Requeues and
	// waits for another instance's lease do not consume deliveries.
	MaxDeliver int
	// MaxAckPending bounds the events this worker holds un-acked (default
	// 10000): queued behind a busy VM, converging, or waiting for a requeue.
	MaxAckPending int
	// Backoff is the delay before a failed event is redelivered.
	Backoff Backoff
	// ShutdownTimeout bounds the drain after the context of Run is done
	// (default 30s). Converges still running then see their context cancelled.
	ShutdownTimeout time.Duration
	// InstanceID names this process in the per-VM leases. It must be unique
	// among the instances of a worker (default host-pid-random).
	InstanceID string
	// ResyncInterval is how often a Target that implements Resyncer is
	// called (default 5m; negative disables it, Runner.TriggerResync still
	// asks for one).
	ResyncInterval time.Duration
	// VerifyInterval is how often every VM of the registry is converged
	// with verification, when the Target is a Verifier (zero or negative:
	// never, the default). Replayed events are always verified.
	VerifyInterval time.Duration
	// VerifyRate bounds a periodic verification pass to this many VMs per
	// second (default 20), so that a large zone does not hammer its server.
	VerifyRate float64
	// LockRetry is how long an event waits before it tries again for a VM
	// whose lease another instance holds (default 1s).
	LockRetry time.Duration
	// TeardownWait bounds how long a converge waits for the workers it is
	// ordered after (Runner.After) before it goes on without them
	// (default 2m).
	TeardownWait time.Duration
	// TeardownPoll is how often a waiting converge reads the registries
	// of those workers again (default 1s).
	TeardownPoll time.Duration
}

// Backoff is exponential: Base, 2×Base, 4×Base … capped at Max, each delay
// shortened by up to Jitter (a fraction, 0 to 1) at random so that events
// failing together do not come back together.
type Backoff struct {
	Base   time.Duration // default 1s
	Max    time.Duration // default 5m
	Jitter float64       // default 0.2
}

// Defaults of Options.
const (
	DefaultConcurrency     = 64
	DefaultAckWait         = 30 * time.Second
	DefaultMaxDeliver      = 20
	DefaultMaxAckPending   = 10000
	DefaultShutdownTimeout = 30 * time.Second
	DefaultResyncInterval  = 5 * time.Minute
	DefaultLockRetry       = time.Second
	DefaultTeardownWait    = 2 * time.Minute
	DefaultTeardownPoll    = time.Second
	DefaultVerifyRate      = 20
	DefaultBackoffBase     = time.Second
	DefaultBackoffMax      = 5 * time.Minute
	DefaultBackoffJitter   = 0.2
)

// SetDefaults fills zero values.
func (o *Options) SetDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.MaxDeliver == 0 {
		o.MaxDeliver = DefaultMaxDeliver
	}
	if o.MaxAckPending == 0 {
		o.MaxAckPending = DefaultMaxAckPending
	}
	def(&o.AckWait, DefaultAckWait)
	def(&o.ShutdownTimeout, DefaultShutdownTimeout)
	def(&o.ResyncInterval, DefaultResyncInterval)
	def(&o.LockRetry, DefaultLockRetry)
	def(&o.TeardownWait, DefaultTeardownWait)
	def(&o.TeardownPoll, DefaultTeardownPoll)
	def(&o.Backoff.Base, DefaultBackoffBase)
	def(&o.Backoff.Max, DefaultBackoffMax)
	if o.Backoff.Jitter == 0 {
		o.Backoff.Jitter = DefaultBackoffJitter
	}
	if o.VerifyRate == 0 {
		o.VerifyRate = DefaultVerifyRate
	}
	if o.InstanceID == "" {
		host, _ := os.Hostname()
		o.InstanceID = host + "-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(rand.Uint64()%1e6, 36)
	}
}

// Validate names the offending option.
func (o *Options) Validate() error {
	switch {
	case o.Concurrency < 1:
		return fmt.Errorf("concurrency: %d, want at least 1", o.Concurrency)
	case o.MaxDeliver < 1:
		return fmt.Errorf("max_deliver: %d, want at least 1", o.MaxDeliver)
	case o.MaxAckPending < o.Concurrency:
		return fmt.Errorf("max_ack_pending: %d is below concurrency %d", o.MaxAckPending, o.Concurrency)
	case o.AckWait < 100*time.Millisecond:
		return fmt.Errorf("ack_wait: %s, want at least 100ms", o.AckWait)
	case o.Backoff.Base <= 0 || o.Backoff.Max < o.Backoff.Base:
		return fmt.Errorf("backoff: base %s, max %s: want 0 < base <= max", o.Backoff.Base, o.Backoff.Max)
	case o.Backoff.Jitter < 0 || o.Backoff.Jitter > 1:
		return fmt.Errorf("backoff.jitter: %g, want 0 to 1", o.Backoff.Jitter)
	case o.VerifyRate < 0:
		return fmt.Errorf("verify_rate: %g, want a positive number of VMs per second", o.VerifyRate)
	case o.ShutdownTimeout < 0 || o.LockRetry < 0:
		return fmt.Errorf("shutdown_timeout and lock_retry must not be negative")
	case o.TeardownWait < 0 || o.TeardownPoll < 0:
		return fmt.Errorf("teardown_wait and teardown_poll must not be negative")
	}
	return nil
}

// Delay returns the backoff before attempt n+1 after n failed deliveries
// (n >= 1): Base×2^(n-1), at most Max, minus up to Jitter of it.
func (b Backoff) Delay(n int) time.Duration {
	d := b.Base
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	if b.Jitter > 0 {
		d -= time.Duration(rand.Float64() * b.Jitter * float64(d))
	}
	return d
}
