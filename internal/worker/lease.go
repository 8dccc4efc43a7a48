package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
)

// errLeaseHeld is returned by acquire when another instance converges the VM.
var errLeaseHeld = errors.New("lease held by another instance")

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

// acquire takes the lease of a VM. It returns errLeaseHeld when another
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
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, errLeaseHeld // released meanwhile; the caller retries shortly
	}
	if err != nil {
		return nil, fmt.Errorf("read lease %s: %w", key, err)
	}
	if string(e.Value()) != l.instance {
		return nil, fmt.Errorf("%w: %s", errLeaseHeld, e.Value())
	}
	rev, err = l.kv.Update(ctx, key, []byte(l.instance), e.Revision())
	if IsCASConflict(err) {
		return nil, errLeaseHeld
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
