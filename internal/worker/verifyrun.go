package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/vmglue/vmglue/eventbus"
)

// verify reads the target back for one VM and returns the findings. A
// target that is no Verifier cannot verify: it says so at debug level and
// returns none, and the converge goes on from the registry alone.
func (r *Runner) verify(ctx context.Context, vm *eventbus.VM, have, want Objects, log zerolog.Logger) ([]Finding, error) {
	v, ok := r.t.(Verifier)
	if !ok {
		log.Debug().Msg("worker cannot verify its target: converging from the registry alone")
		return nil, nil
	}
	r.m.verifications.Inc()
	rb, err := v.Verify(ctx, Request{VM: vm, Have: maps.Clone(have), Want: maps.Clone(want)})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	fs := Compare(want, rb)
	for _, f := range fs {
		if _, wanted := have[f.Key]; f.Kind == DriftMissing && !wanted {
			continue // not created yet: the plan, not a drift
		}
		r.m.driftFound.WithLabelValues(f.Kind).Inc()
		log.Warn().Str("drift", f.Kind).Str("object", f.Key).Str("want", f.Want).Str("found", f.Found).
			Msg("target drifted from the registry")
	}
	return fs, nil
}

// CanVerify reports whether the runner's target is a Verifier.
func (r *Runner) CanVerify() bool {
	_, ok := r.t.(Verifier)
	return ok
}

// verifyLoop verifies every VM of the registry every VerifyInterval (when
// positive), at most VerifyRate VMs per second, and repairs what drifted.
func (r *Runner) verifyLoop(ctx context.Context) {
	if r.opts.VerifyInterval <= 0 {
		return
	}
	if !r.CanVerify() {
		r.log.Warn().Msg("verify_interval set, but this worker cannot verify its target: no periodic verification")
		return
	}
	t := time.NewTicker(r.opts.VerifyInterval)
	defer t.Stop()
	lim := rate.NewLimiter(rate.Limit(r.opts.VerifyRate), 1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.verifyAll(ctx, lim); err != nil && ctx.Err() == nil {
			r.log.Error().Err(err).Msg("periodic verification")
		}
	}
}

// verifyAll runs one verification pass over the registry.
func (r *Runner) verifyAll(ctx context.Context, lim *rate.Limiter) error {
	recs, err := r.reg.List(ctx)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(recs))
	for k := range recs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	start, failed := time.Now(), 0
	for _, k := range keys {
		if err := lim.Wait(ctx); err != nil {
			return err
		}
		if err := r.verifyVM(ctx, k); err != nil {
			failed++
			if ctx.Err() != nil {
				return err
			}
			r.log.Warn().Err(err).Str("vm", k).Msg("periodic verification of a vm")
		}
	}
	stray, err := r.survey(ctx, recs)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		r.log.Warn().Err(err).Msg("periodic verification: survey of the objects marked as vmglue's")
	}
	r.log.Info().Int("vms", len(keys)).Int("failed", failed).Int("stray", stray).Dur("took", time.Since(start)).
		Msg("periodic verification done")
	return nil
}

// verifyVM converges the VM "<cloud>.<vmid>" to its newest snapshot with
// verification, under its lease, as a replayed event would (without a
// message: a failure is returned, not retried or dead-lettered). A VM
// without a snapshot is left alone; one whose lease another instance holds
// is skipped (that instance converges it now).
func (r *Runner) verifyVM(ctx context.Context, vmKey string) error {
	vm, _, err := r.snaps.Get(ctx, vmKey)
	if err != nil || vm == nil {
		return err
	}
	j := &job{key: vmKey, ev: eventbus.Event{ID: "verify", Data: *vm}, verify: true}
	log := r.log.With().Str("cloud", vm.Cloud).Str("vm", vm.ID).Str("event_id", j.ev.ID).Logger()
	res, err := r.converge(j, log)
	switch {
	case errors.Is(err, ErrLeaseHeld):
		return nil
	case err != nil:
		return err
	}
	log.Debug().Str("result", res).Msg("verified")
	return nil
}
