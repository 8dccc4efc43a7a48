package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	worker   string
	instance string
}

// lease is one held lease.
type lease struct {
	l   *leases
	key string
	rev uint64
}

// acquire takes the lease of a VM. It returns ErrLeaseHeld when another
// instance holds it. A lease left by this same instance id (a crash before
// release, with a fixed InstanceID) is taken over: in-process the runtime
// never converges a VM twice at once, so it cannot be in use.
func (l *leases) acquire(ctx context.Context, vmKey string) (*lease, error) {
	key := l.worker + "." + vmKey
	rev, err := l.kv.Create(ctx, key, []byte(l.instance))
	if err == nil {
		return &lease{l: l, key: key, rev: rev}, nil
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
	rev, err = l.kv.Update(ctx, key, []byte(l.instance), e.Revision())
	if IsCASConflict(err) {
		return nil, ErrLeaseHeld
	}
	if err != nil {
		return nil, fmt.Errorf("take over lease %s: %w", key, err)
	}
	return &lease{l: l, key: key, rev: rev}, nil
}

// renew extends the lease for another eventbus.LockTTL. It fails when the
// lease expired and another instance took it.
func (s *lease) renew(ctx context.Context) error {
	rev, err := s.l.kv.Update(ctx, s.key, []byte(s.l.instance), s.rev)
	if err != nil {
		return fmt.Errorf("renew lease %s: %w", s.key, err)
	}
	s.rev = rev
	return nil
}

// release frees the lease, unless someone else holds it by now.
func (s *lease) release(ctx context.Context) error {
	if err := s.l.kv.Delete(ctx, s.key, jetstream.LastRevision(s.rev)); err != nil && !IsCASConflict(err) {
		return fmt.Errorf("release lease %s: %w", s.key, err)
	}
	return nil
}

// keep renews the lease every third of its TTL until ctx is done. When the
// lease is lost (another instance took it, or no renewal succeeded for a
// whole TTL) it calls lost, which cancels the converge, and returns.
func (s *lease) keep(ctx context.Context, lost func(error)) {
	t := time.NewTicker(eventbus.LockTTL / 3)
	defer t.Stop()
	renewed := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := s.renew(ctx)
			switch {
			case err == nil:
				renewed = time.Now()
			case ctx.Err() != nil:
				return
			case IsCASConflict(err) || time.Since(renewed) >= eventbus.LockTTL:
				lost(err)
				return
			}
		}
	}
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
// Within one process no converge runs during a Resync anyway. fn must be
// short: the lease is not renewed while it runs (TTL eventbus.LockTTL).
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
	rec, _, err := r.reg.Get(ctx, vmKey)
	if err != nil {
		return err
	}
	return fn(rec.applied())
}
