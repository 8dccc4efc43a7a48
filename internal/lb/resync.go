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
// health checks. Draining servers are left to Apply. It reads each instance
// once ("show servers state") and changes only vmglue's servers.
//
// For a VM that Apply has handled in this process, Resync uses what Apply
// last returned instead of applied, under the same per-VM lock, so an older
// copy of the registry never brings back a removed server. An unreachable
// instance is skipped and reported; the others are still repaired.
func (t *Target) Resync(ctx context.Context, applied map[string]worker.Objects) error {
	var o outcome
	states := map[string]map[string]server{}
	for _, in := range t.cfg.Instances {
		st, err := serversState(ctx, t.clients[in.Name])
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
		if !s.Since.IsZero() {
			continue
		}
		srv, exists := state[key.haproxy()]
		if exists && srv.Admin&adminForcedMaint == 0 && (!s.checks() || srv.Check&checkEnabled != 0) {
			continue
		}
		n++
		s.Added = false
		if _, err := t.ensure(ctx, t.clients[key.Instance], key, s, srv, exists, false); err != nil {
			errs = append(errs, fmt.Errorf("vm %s: %s: %w", vmKey, k, err))
			if unreachable(err) {
				delete(states, key.Instance)
			}
		}
	}
	return n, errors.Join(errs...)
}

// ResyncLoop runs Resync with the registry that load returns every
// ResyncInterval, and at once when an instance was reloaded or restarted
// (its worker Pid in "show info" changed, checked every second), until ctx
// ends. Errors are logged, not returned: the next round tries again.
func (t *Target) ResyncLoop(ctx context.Context, load func(context.Context) (map[string]worker.Objects, error)) error {
	pids := map[string]int{}
	next := time.Now()
	tick := time.NewTicker(min(time.Second, t.cfg.ResyncInterval))
	defer tick.Stop()
	for {
		due := !time.Now().Before(next)
		for _, in := range t.cfg.Instances {
			pid, err := t.workerPid(ctx, t.clients[in.Name])
			if err == nil && pid != pids[in.Name] {
				if pids[in.Name] != 0 {
					t.log.Info().Str("instance", in.Name).Int("pid", pid).Msg("haproxy reloaded, resyncing")
				}
				pids[in.Name] = pid
				due = true
			}
		}
		if due {
			next = time.Now().Add(t.cfg.ResyncInterval)
			applied, err := load(ctx)
			if err == nil {
				err = t.Resync(ctx, applied)
			}
			if err != nil && ctx.Err() == nil {
				t.log.Error().Err(err).Msg("lb resync")
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

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
