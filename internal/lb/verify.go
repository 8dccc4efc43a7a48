package lb

import (
	"context"
	"fmt"

	"github.com/vmglue/vmglue/internal/worker"
)

var _ worker.Verifier = (*Target)(nil)

// Verify reads "show servers state" of each instance that holds a key of
// req.Have or req.Want (once per instance) and changes nothing. A recorded
// server found at its recorded address is present with its recorded value,
// or "maintenance <value>" when it sits disabled after an add cut short (a
// drain an operator started is not drift); found at another address it is
// present with that address (wrong). A wanted server that vmglue did not
// record and HAProxy has is foreign. An unreachable instance is an error.
func (t *Target) Verify(ctx context.Context, req worker.Request) (worker.Readback, error) {
	rb := worker.Readback{Present: worker.Objects{}, Foreign: worker.Objects{}}
	states := map[string]map[string]server{}
	for _, k := range unionKeys(req.Have, req.Want) {
		key, err := parseKey(k)
		if err != nil {
			return rb, worker.Permanent(err)
		}
		c, ok := t.clients[key.Instance]
		if !ok {
			continue // no longer configured: not vmglue's to look at
		}
		state, ok := states[key.Instance]
		if !ok {
			if state, err = serversState(ctx, c); err != nil {
				return rb, fmt.Errorf("verify lb instance %s: %w", key.Instance, err)
			}
			states[key.Instance] = state
		}
		srv, exists := state[key.haproxy()]
		if !exists {
			continue
		}
		have, ours := req.Have[k]
		if !ours {
			rb.Foreign[k] = "server at " + srv.addrPort()
			continue
		}
		s, err := parseSpec(have)
		if err != nil {
			return rb, worker.Permanent(err)
		}
		switch {
		case srv.addrPort() != s.Addr.String():
			rb.Present[k] = srv.addrPort()
		case s.Since.IsZero() && !s.marked() && srv.Admin&adminForcedMaint != 0:
			rb.Present[k] = "maintenance " + have
		default:
			rb.Present[k] = have
		}
	}
	return rb, nil
}
