package lb

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vmglue/vmglue/internal/worker"
)

// Resync repairs what HAProxy lost or left half done: for every server in
// applied (the registry, keyed by VM key, as the runtime recorded it) that
// should be in a pool, it re-adds the server when the instance no longer
// has it (HAProxy forgets dynamic servers on reload or restart), enables it
// when it sits in maintenance after an interrupted add, and enables its
// health checks; a server recorded "wanted" (its instance could not be
// reached) is added. A server draining or recorded "leaving" (unwanted,
// its instance could not be reached) is drained and deleted, never put
// back. It reads each instance once ("show servers state") and changes
// only vmglue's servers.
//
// For a VM that Apply has handled in this process, Resync uses what Apply
// last returned instead of applied, under the same per-VM lock, so an older
// copy of the registry never brings back a removed server. An unreachable
// instance is skipped and reported; the others are still repaired. It
// first forgets the per-VM state no longer needed (prune).
func (t *Target) Resync(ctx context.Context, applied map[string]worker.Objects) error {
	t.prune()
	var o outcome
	states := map[string]map[string]server{}
	for _, in := range t.cfg.Instances {
		st, err := serversState(ctx, t.clients[in.Name])
		t.reached(in.Name, err)
		if err != nil {
			o.add(fmt.Errorf("resync instance %s: %w", in.Name, err))
			continue
		}
		states[in.Name] = st
	}
	vmKeys := make([]string, 0, len(applied))
	for k := range applied {
		vmKeys = append(vmKeys, k)
	}
	sort.Strings(vmKeys)
	repaired := 0
	for _, vk := range vmKeys {
		if ctx.Err() != nil {
			o.add(ctx.Err())
			break
		}
		n, err := t.resyncVM(ctx, vk, applied[vk], states)
		repaired += n
		o.add(err)
	}
	if repaired > 0 {
		t.log.Info().Int("servers", repaired).Msg("resync repaired servers")
	}
	if err := o.err(); err != nil {
		return fmt.Errorf("lb resync: %w", err)
	}
	return nil
}

// resyncVM repairs one VM's servers and returns how many needed a change.
func (t *Target) resyncVM(ctx context.Context, vmKey string, objs worker.Objects, states map[string]map[string]server) (int, error) {
	st := t.vm(vmKey)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.known {
		objs = st.last
	}
	var errs []error
	n := 0
	for _, k := range unionKeys(objs, nil) {
		key, err := parseKey(k)
		if err != nil {
			errs = append(errs, worker.Permanent(fmt.Errorf("vm %s: %w", vmKey, err)))
			continue
		}
		state, ok := states[key.Instance]
		if !ok {
			continue // unreachable or no longer configured
		}
		s, err := parseSpec(objs[k])
		if err != nil {
			errs = append(errs, worker.Permanent(fmt.Errorf("vm %s: %w", vmKey, err)))
			continue
		}
		srv, exists := state[key.haproxy()]
		fix := t.resyncFix(ctx, st, key, s, srv, exists)
		if fix == nil {
			continue
		}
		err = t.repair(ctx, vmKey, k, objs[k], fix)
		switch {
		case errors.Is(err, errNotOurs):
			t.log.Debug().Str("vm", vmKey).Str("object", k).Err(err).Msg("resync: left to the converge")
		case isRequeue(err):
			t.log.Debug().Str("vm", vmKey).Str("object", k).Err(err).Msg("resync: drain in progress")
		case err != nil:
			n++
			errs = append(errs, fmt.Errorf("vm %s: %s: %w", vmKey, k, err))
			if unreachable(err) {
				delete(states, key.Instance)
			}
		default:
			n++
		}
	}
	return n, errors.Join(errs...)
}

// resyncFix returns the repair one recorded object needs, nil for none:
//
//   - in the pool, added, or wanted (an instance not reached): add it when
//     missing, enable it and its checks; a wanted server HAProxy has at
//     another address is not vmglue's and is left alone;
//   - draining or leaving (unwanted, an instance not reached): finish the
//     drain and delete it, never put it back. A leaving server HAProxy has
//     at another address is not vmglue's and is left alone.
//
// The caller holds st.mu.
func (t *Target) resyncFix(ctx context.Context, st *vmState, key objectKey, s spec, srv server, exists bool) func() error {
	c, k := t.clients[key.Instance], key.String()
	elsewhere := exists && srv.addrPort() != s.Addr.String()
	switch {
	case !s.Since.IsZero() || s.Leaving:
		if !exists || (s.Leaving && elsewhere) {
			delete(st.drains, k)
			return nil
		}
		return func() error {
			d := s
			if d.Leaving {
				// The drain start is not recorded (Resync cannot): keep it
				// here, so the drain timeout holds across Resyncs.
				d.Leaving, d.Since = false, st.drains[k]
				if d.Since.IsZero() && srv.Admin&adminForcedDrain != 0 {
					d.Since = t.now()
				}
			}
			v, gone, err := t.remove(ctx, c, key, d)
			if gone {
				delete(st.drains, k)
			} else if p, perr := parseSpec(v); perr == nil && s.Leaving && !p.Since.IsZero() {
				if st.drains == nil {
					st.drains = map[string]time.Time{}
				}
				st.drains[k] = p.Since
			}
			return err
		}
	case s.Wanted && elsewhere:
		t.log.Warn().Str("server", k).Str("haproxy_addr", srv.addrPort()).
			Msg("resync: a server not vmglue's has the name, left alone")
		return nil
	case s.Wanted && !exists:
		s.Wanted = false
		return func() error {
			_, err := t.add(ctx, c, key, s, false)
			return err
		}
	}
	if exists && srv.Admin&adminForcedMaint == 0 && (!s.checks() || srv.Check&checkEnabled != 0) {
		return nil
	}
	s.Added, s.Wanted = false, false
	return func() error {
		_, err := t.ensure(ctx, c, key, s, srv, exists, false)
		return err
	}
}

// errNotOurs says a repair was skipped: another vmglue process converges
// the VM now, or changed the object since the Resync read the registry.
var errNotOurs = errors.New("changed or being converged by another instance")

// repair runs fix for object k (value v in the Resync's copy of the
// registry) of a VM, through the guard when one is set: under the VM's
// lease and only if the registry still holds k with value v.
func (t *Target) repair(ctx context.Context, vmKey, k, v string, fix func() error) error {
	if t.guard == nil {
		return fix()
	}
	err := t.guard(ctx, vmKey, func(applied worker.Objects) error {
		if cur, ok := applied[k]; !ok || cur != v {
			return errNotOurs
		}
		return fix()
	})
	if errors.Is(err, worker.ErrLeaseHeld) {
		return fmt.Errorf("%w: %w", errNotOurs, err)
	}
	return err
}

// WatchReloads calls onReload with the instance's name when it first
// answers and whenever it was reloaded or restarted since (the worker Pid
// in "show info" changed; checked every ReloadCheck), until ctx ends:
// HAProxy forgot the dynamic servers then, and the caller runs Resync
// (vmglue serve: worker.Runner.TriggerResync, so that Resync never races a
// converge). An instance that cannot be asked is skipped until it answers;
// its first answer after an outage with another Pid counts as a reload.
func (t *Target) WatchReloads(ctx context.Context, onReload func(instance string)) {
	pids := map[string]int{}
	tick := time.NewTicker(ReloadCheck)
	defer tick.Stop()
	for {
		for _, in := range t.cfg.Instances {
			pid, err := t.workerPid(ctx, t.clients[in.Name])
			if err != nil || pid == pids[in.Name] {
				continue
			}
			if pids[in.Name] != 0 {
				t.metrics.reloads.WithLabelValues(in.Name).Inc()
				t.log.Info().Str("instance", in.Name).Int("pid", pid).Msg("haproxy reloaded, resyncing")
			} else {
				t.log.Debug().Str("instance", in.Name).Int("pid", pid).Msg("haproxy answers, resyncing")
			}
			pids[in.Name] = pid
			onReload(in.Name)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// ReloadCheck is how often WatchReloads asks each instance for its Pid.
const ReloadCheck = time.Second

// workerPid returns the Pid of the HAProxy process serving the runtime API.
func (t *Target) workerPid(ctx context.Context, c *Client) (int, error) {
	r, err := c.Do(ctx, "show info")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(r, "\n") {
		if v, ok := strings.CutPrefix(l, "Pid: "); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("show info: %w: no Pid", ErrRejected)
}
