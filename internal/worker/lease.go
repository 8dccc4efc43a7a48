package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
)

// ErrLeaseHeld is returned when another instance converges the VM (acquire,
// Runner.Guard).
var ErrLeaseHeld = errors.New("lease held by another instance")

// leases hands out the per-VM leases of one worker in the KV bucket
// VMGLUE_LOCKS, key "<worker>.<cloud>.<vmid>", value the instance id. The
// bucket's TTL (eventbus.LockTTL) frees the lease of a dead instance.
type leases struct {
	kv       jetstream.KeyValue
	nc       *nats.Conn // release publishes on it without waiting for an answer
	worker   string
	instance string
}

// Timing of a held lease. The server frees a lease LockTTL after its last
// write; this instance counts it as lost much earlier, leaseValid after the
// start of its last successful write, so that no instance acts on a lease
// another one may already hold, even when this process was paused (SIGSTOP,
// a VM freeze, a long GC) between a renewal and its next target call.
const (
	leaseValid = eventbus.LockTTL / 2 // counted as held this long after a write began
	leaseRenew = eventbus.LockTTL / 6 // renewed this often: two tries within leaseValid
)

// lease is one held lease.
type lease struct {
	l     *leases
	key   string
	rev   atomic.Uint64 // of the last write: acquire, then each renewal
	valid atomic.Int64  // Unix nanoseconds until which the lease counts as held
}

func newLease(l *leases, key string, rev uint64, began time.Time) *lease {
	s := &lease{l: l, key: key}
	s.rev.Store(rev)
	s.valid.Store(began.Add(leaseValid).UnixNano())
	return s
}

// revision is the revision of the lease's last write.
func (s *lease) revision() uint64 { return s.rev.Load() }

// validUntil is when the lease stops counting as held, unless renewed.
func (s *lease) validUntil() time.Time { return time.Unix(0, s.valid.Load()) }

// acquire takes the lease of a VM. It returns ErrLeaseHeld when another
// instance holds it. A lease left by this same instance id (a crash before
// release, with a fixed InstanceID) is taken over: in-process the runtime
// never converges a VM twice at once, so it cannot be in use.
func (l *leases) acquire(ctx context.Context, vmKey string) (*lease, error) {
	key := l.worker + "." + vmKey
	began := time.Now()
	rev, err := l.kv.Create(ctx, key, []byte(l.instance))
	if err == nil {
		return newLease(l, key, rev, began), nil
	}
	if !IsCASConflict(err) {
		return nil, fmt.Errorf("take lease %s: %w", key, err)
	}
	e, err := l.kv.Get(ctx, key)
	if eventbus.IsNoKey(err) {
		return nil, ErrLeaseHeld // released meanwhile; the caller retries shortly
	}
	if err != nil {
		return nil, fmt.Errorf("read lease %s: %w", key, err)
	}
	if string(e.Value()) != l.instance {
		return nil, fmt.Errorf("%w: %s", ErrLeaseHeld, e.Value())
	}
	began = time.Now()
	rev, err = l.kv.Update(ctx, key, []byte(l.instance), e.Revision())
	if IsCASConflict(err) {
		return nil, ErrLeaseHeld
	}
	if err != nil {
		return nil, fmt.Errorf("take over lease %s: %w", key, err)
	}
	return newLease(l, key, rev, began), nil
}

// errLeaseExpired is why a lease counts as lost when no renewal succeeded
// within leaseValid.
var errLeaseExpired = errors.New("not renewed in time")

// renew extends the lease: the server keeps it another eventbus.LockTTL,
// and it counts as held leaseValid from the start of this call. It fails
// when the lease already counts as lost, or expired and another instance
// took it.
func (s *lease) renew(ctx context.Context) error {
	began := time.Now()
	if !began.Before(s.validUntil()) {
		return fmt.Errorf("renew lease %s: %w", s.key, errLeaseExpired)
	}
	rev, err := s.l.kv.Update(ctx, s.key, []byte(s.l.instance), s.rev.Load())
	if err != nil {
		return fmt.Errorf("renew lease %s: %w", s.key, err)
	}
	s.rev.Store(rev)
	s.valid.Store(began.Add(leaseValid).UnixNano())
	return nil
}

// release frees the lease, unless someone else holds it by now: the
// delete marker KeyValue.Delete with LastRevision would write, published
// without waiting for the server's answer (one message less per converge;
// the answer only ever told a lease someone else held by now, which is
// left alone either way). The server applies it in order before anything
// this connection sends later (this instance's next acquire of the VM);
// if it is lost with the connection, the bucket's TTL frees the lease, or
// this instance takes it over (acquire).
func (s *lease) release(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("release lease %s: %w", s.key, err)
	}
	m := nats.NewMsg("$KV." + eventbus.BucketLocks + "." + s.key)
	m.Header.Set("KV-Operation", "DEL")
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(s.rev.Load(), 10))
	if err := s.l.nc.PublishMsg(m); err != nil {
		return fmt.Errorf("release lease %s: %w", s.key, err)
	}
	return nil
}

// keep renews the lease now and then every leaseRenew until ctx is done.
// When the lease is lost (another instance took it, it expired on the
// server, or no renewal succeeded within leaseValid) it calls lost, which
// cancels the converge, and returns. A converge starts it leaseRenew after
// taking the lease (keepAfter): most converges end before, without it.
func (s *lease) keep(ctx context.Context, lost func(error)) {
	t := time.NewTicker(leaseRenew)
	defer t.Stop()
	for {
		// A renewal, once sent, is waited for even when ctx ends: the
		// release that follows expects its revision.
		rctx, rcancel := bounded(context.WithoutCancel(ctx), requestTimeout)
		err := s.renew(rctx)
		rcancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return
		case IsCASConflict(err) || errors.Is(err, errLeaseExpired) || !time.Now().Before(s.validUntil()):
			lost(err)
			return
		}
		expiry := time.NewTimer(time.Until(s.validUntil()))
		select {
		case <-ctx.Done():
			expiry.Stop()
			return
		case <-expiry.C:
			lost(fmt.Errorf("lease %s: %w", s.key, errLeaseExpired))
			return
		case <-t.C:
			expiry.Stop()
		}
	}
}

// requestTimeout bounds the NATS requests of a converge under its lease.
const requestTimeout = 10 * time.Second

// bounded returns a child of ctx that is also done after d, by a timer of
// its own. A leaseContext has a Deadline (the lease's validity, moved
// forward by each renewal) but is done only when the lease is lost, and
// nats.go adds its default timeout only to a context without a deadline:
// a JetStream reply lost in a leader change (a node killed) was awaited
// for ever under it, while the lease was renewed for ever, so the VM was
// never converged again (found by bench/faults, nats-node-kill).
//
// Under a lease the child is a leaseContext too, so that a request made
// after the lease's validity passed (a paused process resumed) fails at
// once, as it would under the lease itself.
func bounded(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(ctx)
	t := time.AfterFunc(d, cancel)
	stop := func() { t.Stop(); cancel() }
	if lc, ok := ctx.(leaseContext); ok {
		return leaseContext{Context: c, ls: lc.ls}, stop
	}
	return c, stop
}

// RequestContext bounds a target's NATS requests under a converge's lease
// (a KV read or write of its own) as the runtime bounds its own (bounded):
// the lease context has a deadline that renewals keep moving, so nats.go
// adds no timeout of its own, and a reply lost in a leader change would
// be waited for as long as the lease is renewed.
func RequestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return bounded(ctx, requestTimeout)
}

// keepAfter runs keep from leaseRenew on (the lease counts as held until
// leaseValid, later), in a goroutine of its own. stop cancels it if it has
// not started, else ends it and waits for the renewal in flight: a renewal
// landing after the release's delete (which expects the revision before
// it) would leave the lease held for its TTL. A converge, most of which
// take milliseconds, costs no goroutine, ticker or timer of its own for
// the renewals.
func (s *lease) keepAfter(ctx context.Context, lost func(error)) (stop func()) {
	kctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	t := time.AfterFunc(leaseRenew, func() { defer close(done); s.keep(kctx, lost) })
	return func() {
		cancel()
		if !t.Stop() {
			<-done
		}
	}
}

// leaseContext is the context of a converge under a lease. It is cancelled
// when keep finds the lease lost; and because a paused process may run its
// next target call before keep does, it also reports the loss itself: its
// Deadline is the lease's current validity (it moves forward with each
// renewal), and Err fails once that has passed. A target checks
// Deadline before each call it makes (the DNS batcher does, right before it
// sends an UPDATE), so nothing is sent on a lease another instance may hold.
type leaseContext struct {
	context.Context
	ls *lease
}

// Deadline is the earlier of the parent's deadline and the lease's validity.
func (c leaseContext) Deadline() (time.Time, bool) {
	d := c.ls.validUntil()
	if pd, ok := c.Context.Deadline(); ok && pd.Before(d) {
		return pd, true
	}
	return d, true
}

// Err is the parent's error, or context.DeadlineExceeded once the lease's
// validity has passed.
func (c leaseContext) Err() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.ls.validUntil()) {
		return context.DeadlineExceeded
	}
	return nil
}

// Guard runs fn for one VM ("<cloud>.<vmid>") the way a converge runs:
// under the VM's lease, so no instance converges it meanwhile, with the
// objects applied for it read afresh from the registry. It returns
// ErrLeaseHeld without calling fn when another instance holds the lease
// (that instance is converging the VM and records the outcome).
//
// A Resync works from a copy of the registry taken before it started;
// another instance may have changed a VM since. A target that repairs
// objects in a Resync (re-adds what a server lost) checks each repair with
// Guard, so it never brings back an object another instance just removed.
// Within one process no converge runs during a Resync anyway. The lease is
// renewed while fn runs, as during a converge; fn should still be short (a
// lost lease cannot stop it: it is logged).
func (r *Runner) Guard(ctx context.Context, vmKey string, fn func(applied Objects) error) error {
	ls, err := r.leases.acquire(ctx, vmKey)
	if err != nil {
		return err
	}
	defer func() {
		bctx, cancel := bookkeeping(ctx)
		defer cancel()
		if err := ls.release(bctx); err != nil {
			r.log.Warn().Err(err).Str("vm", vmKey).Msg("release lease")
		}
	}()
	// Renewals stop before the release (deferred calls run last first).
	defer ls.keepAfter(ctx, func(err error) {
		r.log.Warn().Err(err).Str("vm", vmKey).Msg("lease lost during a guarded repair")
	})()
	rctx, rcancel := bounded(ctx, requestTimeout)
	rec, _, err := r.reg.Get(rctx, vmKey)
	rcancel()
	if err != nil {
		return err
	}
	return fn(rec.applied())
}
