package lb

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"sort"
	"strings"

	"github.com/vmglue/vmglue/internal/worker"
)

// Apply converges every instance from have to want and returns what is in
// place. Each instance is converged on its own: when one cannot be reached,
// the others are still changed and the error is transient (a Requeue when
// a drain is in progress elsewhere), with the returned Objects telling the
// runtime what did succeed; the objects of the instance not reached are
// returned as "wanted ..." or "leaving ..." markers (see unreached), so
// that Resync completes them when it answers, also after the event ran out
// of retries, and never puts a leaving server back. A server draining is
// returned as "draining since <unix> ..." with a Requeue; the runtime
// records it, so a restarted vmglue resumes the same drain.
func (t *Target) Apply(ctx context.Context, req worker.Request) (worker.Objects, error) {
	vm, have, want := req.VM, req.Have, req.Want
	st := t.vm(vm.Key())
	st.mu.Lock()
	defer st.mu.Unlock()
	out := req.Result()
	defer func() { t.applied(st, maps.Clone(out)) }()
	log := t.log.With().Str("vm", vm.ID).Str("cloud", vm.Cloud).Logger()

	byInstance := map[string][]objectKey{}
	var o outcome
	for _, k := range unionKeys(have, want) {
		key, err := parseKey(k)
		if err != nil {
			o.add(worker.Permanent(err))
			continue
		}
		if _, ok := t.clients[key.Instance]; !ok {
			if _, wanted := want[k]; wanted {
				o.add(worker.Permanent(fmt.Errorf("%s: instance %q is not configured", k, key.Instance)))
				continue
			}
			// The instance left the configuration: forget it, touch nothing.
			log.Warn().Str("object", k).Msg("instance no longer configured, server left in place")
			delete(out, k)
			continue
		}
		byInstance[key.Instance] = append(byInstance[key.Instance], key)
	}
	for _, in := range t.cfg.Instances {
		keys := byInstance[in.Name]
		if len(keys) == 0 {
			continue
		}
		c := t.clients[in.Name]
		state, err := serversState(ctx, c)
		t.reached(in.Name, err)
		if err != nil {
			o.add(fmt.Errorf("instance %s: %w", in.Name, err))
			t.markUnreached(out, keys, req)
			continue
		}
		for i, key := range keys {
			k := key.String()
			v, err := t.step(ctx, c, state, key, have[k], want[k])
			if err != nil && unreachable(err) {
				v = unreached(unconfirmed(req.Unverified, k, v, want[k]), want[k])
			}
			set(out, k, v)
			if err != nil {
				o.add(fmt.Errorf("instance %s: %s: %w", in.Name, key.haproxy(), err))
				if unreachable(err) {
					t.markUnreached(out, keys[i+1:], req)
					break
				}
			}
		}
	}
	err := o.err()
	switch {
	case err == nil:
	case isRequeue(err) && len(o.transient) > 0:
		log.Warn().Err(errors.Join(o.transient...)).Msg("lb apply: instance failed, retried with the drain in progress")
	case !isRequeue(err):
		log.Error().Err(err).Msg("lb apply")
	}
	return out, err
}

// markUnreached records the objects of an instance that could not be
// reached in the form Resync completes when it answers (see unreached).
func (t *Target) markUnreached(out worker.Objects, keys []objectKey, req worker.Request) {
	have, want, unverified := req.Have, req.Want, req.Unverified
	for _, key := range keys {
		k := key.String()
		set(out, k, unreached(unconfirmed(unverified, k, have[k], want[k]), want[k]))
	}
}

// unconfirmed returns "" for a wanted object whose value v is unverified
// (in Request.Unverified: pending from an Apply that failed or never
// returned, so perhaps never added), else v: such an object is recorded
// "wanted", not as in place, when its instance cannot be reached.
func unconfirmed(unverified worker.Objects, k, v, want string) string {
	if want != "" && v != "" && unverified[k] == v {
		return ""
	}
	return v
}

// set puts v under k, or deletes k for "".
func set(o worker.Objects, k, v string) {
	if v == "" {
		delete(o, k)
	} else {
		o[k] = v
	}
}

// step converges one object from old to new ("" for none) and returns its
// value now ("" once the server is gone or was never ours).
func (t *Target) step(ctx context.Context, c *Client, state map[string]server, k objectKey, old, new string) (string, error) {
	var from, to spec
	var err error
	if old != "" {
		if from, err = parseSpec(old); err != nil {
			return old, worker.Permanent(err)
		}
	}
	if new != "" {
		if to, err = parseSpec(new); err != nil || to.Added || !to.Since.IsZero() || to.marked() {
			return old, worker.Permanent(fmt.Errorf("wanted value %q is not a server address and options", new))
		}
	}
	srv, exists := state[k.haproxy()]
	if from.marked() {
		// Recorded while the instance could not be reached: the server is
		// ours only if HAProxy has it at the marker's address.
		switch {
		case !exists && new == "":
			return "", nil // gone already
		case !exists:
			old, from = "", spec{}
		case srv.addrPort() != from.Addr.String() && new == "":
			return "", nil // not ours: forget it, touch nothing
		case srv.addrPort() != from.Addr.String():
			return "", worker.Permanent(fmt.Errorf("%w: server %s exists and is not vmglue's (address %s)",
				worker.ErrConflict, k.haproxy(), srv.addrPort()))
		default:
			from.Wanted, from.Leaving = false, false
			if srv.Admin&adminForcedDrain != 0 {
				from.Since = t.now() // a drain Resync started: go on from here
			}
			old = from.String()
		}
	}
	switch {
	case old == "":
		if exists {
			return "", worker.Permanent(fmt.Errorf("%w: server %s exists and is not vmglue's (address %s)",
				worker.ErrConflict, k.haproxy(), srv.addrPort()))
		}
		return t.add(ctx, c, k, to, false)
	case new == "":
		v, _, err := t.remove(ctx, c, k, from)
		return v, err
	case from.inPool() == new && from.Since.IsZero():
		// Unchanged (or added but not yet enabled): make sure it is there.
		return t.ensure(ctx, c, k, to, srv, exists, true)
	case from.inPool() == new:
		// Draining, and the VM is back in the pool: stop the drain.
		if !exists {
			return t.add(ctx, c, k, to, true)
		}
		if err := c.Exec(ctx, "set server "+k.haproxy()+" state ready"); err != nil {
			return old, err
		}
		t.log.Info().Str("server", k.String()).Msg("drain cancelled, server back in the pool")
		srv.Admin &^= adminForcedMaint | adminForcedDrain
		return t.ensure(ctx, c, k, to, srv, true, true)
	case exists && from.Addr != to.Addr && srv.addrPort() == to.Addr.String() && srv.Admin&adminForcedDrain == 0:
		// Already moved to the new address (a crash after the change).
		return t.ensure(ctx, c, k, to, srv, exists, true)
	case exists && from.Addr == to.Addr && from.Since.IsZero() && srv.Admin&adminForcedDrain == 0:
		// Only the weight changed (server.weight in the config): set it
		// in place, no drain.
		if w, ok := weightOnly(from.Options, to.Options); ok {
			if err := c.Exec(ctx, "set server "+k.haproxy()+" weight "+w); err != nil {
				return old, err
			}
			t.log.Info().Str("server", k.String()).Str("weight", w).Msg("server weight changed")
			return t.ensure(ctx, c, k, to, srv, exists, true)
		}
	}
	// A new address or new options: drain and delete the old server, then
	// add the new one under the same name.
	v, gone, err := t.remove(ctx, c, k, from)
	if err != nil || !gone {
		return v, err
	}
	return t.add(ctx, c, k, to, true)
}

// add runs "add server", "enable server" and, with checks, "enable health".
// owned says the name is vmglue's: an existing server is then taken as
// this one (a crash between the add and the registry).
func (t *Target) add(ctx context.Context, c *Client, k objectKey, s spec, owned bool) (string, error) {
	err := c.Exec(ctx, "add server "+k.haproxy()+" "+s.inPool(), "New server registered.")
	switch {
	case errors.Is(err, ErrExists) && owned:
	case errors.Is(err, ErrExists):
		return "", worker.Permanent(fmt.Errorf("%w: server %s exists and is not vmglue's", worker.ErrConflict, k.haproxy()))
	case errors.Is(err, ErrRejected), errors.Is(err, ErrNoSuchBackend):
		return "", worker.Permanent(err)
	case err != nil:
		return "", err
	default:
		t.metrics.added.WithLabelValues(k.Instance).Inc()
		t.log.Info().Str("server", k.String()).Str("addr", s.Addr.String()).Msg("server added")
	}
	added := s
	added.Added = true
	if err := c.Exec(ctx, "enable server "+k.haproxy()); err != nil {
		return added.String(), err
	}
	if s.checks() {
		if err := c.Exec(ctx, "enable health "+k.haproxy()); err != nil {
			return added.String(), err
		}
	}
	return s.inPool(), nil
}

// ensure makes an owned server that should be in the pool be there: re-add
// it when missing (HAProxy reloaded), enable it when in maintenance (an add
// cut short), enable its checks. A server an operator drained stays drained.
//
// With replace, a server of the same name at another address is drained,
// deleted and added again at the right one (Apply only: Resync cannot record
// a drain).
func (t *Target) ensure(ctx context.Context, c *Client, k objectKey, s spec, srv server, exists, replace bool) (string, error) {
	if !exists {
		t.log.Info().Str("server", k.String()).Msg("server missing, adding it again")
		return t.add(ctx, c, k, s, true)
	}
	if srv.addrPort() != s.Addr.String() {
		// Ours but elsewhere (a crash in the middle of an update): drain it
		// and add it again. The draining value names the old address, so
		// the next round finishes the move instead of cancelling the drain.
		at, err := netip.ParseAddrPort(srv.addrPort())
		if !replace || err != nil {
			t.log.Warn().Str("server", k.String()).Str("haproxy_addr", srv.addrPort()).Str("addr", s.Addr.String()).
				Msg("server has another address, left as is")
		} else {
			t.log.Warn().Str("server", k.String()).Str("haproxy_addr", srv.addrPort()).Str("addr", s.Addr.String()).
				Msg("server has another address, moving it")
			v, gone, err := t.remove(ctx, c, k, spec{Addr: at, Options: s.Options})
			if err != nil || !gone {
				return v, err
			}
			return t.add(ctx, c, k, s, true)
		}
	}
	added := s
	added.Added = true
	if srv.Admin&adminForcedMaint != 0 {
		if err := c.Exec(ctx, "enable server "+k.haproxy()); err != nil {
			return added.String(), err
		}
		t.log.Info().Str("server", k.String()).Msg("server enabled")
	}
	if s.checks() && srv.Check&checkEnabled == 0 {
		if err := c.Exec(ctx, "enable health "+k.haproxy()); err != nil {
			return added.String(), err
		}
	}
	return s.inPool(), nil
}

func unionKeys(a, b worker.Objects) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func isRequeue(err error) bool {
	var rq *worker.RequeueError
	return errors.As(err, &rq)
}

// weightOnly reports whether server options a and b differ in the weight
// alone, and returns b's weight (HAProxy's default 1 when b sets none).
func weightOnly(a, b string) (string, bool) {
	ra, wa := cutWeight(a)
	rb, wb := cutWeight(b)
	return wb, ra == rb && wa != wb
}

// cutWeight splits "weight N" off server options.
func cutWeight(opts string) (rest, weight string) {
	f := strings.Fields(opts)
	kept := f[:0:0]
	weight = "1"
	for i := 0; i < len(f); i++ {
		if f[i] == "weight" && i+1 < len(f) {
			weight = f[i+1]
			i++
			continue
		}
		kept = append(kept, f[i])
	}
	return strings.Join(kept, " "), weight
}
