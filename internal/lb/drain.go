package lb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vmglue/vmglue/internal/worker"
)

// remove takes an owned server out of the pool without cutting a request:
//
//  1. "set server b/s state drain": no new sessions, running ones go on;
//  2. while the server still has sessions or queued requests (show stat
//     scur+qcur) and the drain timeout has not passed, return the value
//     "draining since <unix> ..." with a Requeue: nothing blocks, and the
//     start survives a restart because the runtime records the value;
//  3. at zero, or at the timeout ("shutdown sessions" first, logged), "disable
//     server" then "del server".
//
// It returns the value now in place ("" once gone) and whether the server
// is gone. A server that no longer exists counts as removed.
func (t *Target) remove(ctx context.Context, c *Client, k objectKey, s spec) (string, bool, error) {
	name := k.haproxy()
	now := t.now()
	log := t.log.With().Str("server", k.String()).Logger()
	if s.Since.IsZero() {
		err := c.Exec(ctx, "set server "+name+" state drain")
		if gone(err) {
			log.Info().Msg("server already gone")
			return "", true, nil
		}
		if err != nil {
			return s.String(), false, err
		}
		s.Added, s.Since = false, now
		log.Info().Dur("timeout", t.cfg.DrainTimeout).Msg("server draining")
	}
	draining := s.String()
	n, err := sessions(ctx, c, k.Backend, k.Server)
	if gone(err) {
		return "", true, nil
	}
	if err != nil {
		return draining, false, err
	}
	deadline := s.Since.Add(t.cfg.DrainTimeout)
	if n > 0 && now.Before(deadline) {
		after := min(t.cfg.DrainPoll, deadline.Sub(now))
		after = max(after, 10*time.Millisecond)
		return draining, false, worker.Requeue(after, fmt.Sprintf("draining %s: %d sessions", k, n))
	}
	if n > 0 {
		log.Warn().Int("sessions", n).Dur("timeout", t.cfg.DrainTimeout).
			Msg("drain timeout reached, cutting the remaining sessions")
		if err := c.Exec(ctx, "shutdown sessions server "+name); gone(err) {
			return "", true, nil
		} else if err != nil {
			return draining, false, err
		}
	}
	if err := c.Exec(ctx, "disable server "+name); gone(err) {
		return "", true, nil
	} else if err != nil {
		return draining, false, err
	}
	err = c.Exec(ctx, "del server "+name, "Server deleted.")
	switch {
	case err == nil || gone(err):
		how := "drained"
		if n > 0 {
			how = "timeout"
		}
		t.metrics.removed.WithLabelValues(k.Instance, how).Inc()
		log.Info().Str("drain", how).Msg("server deleted")
		return "", true, nil
	case errors.Is(err, ErrConnectionsAttached), errors.Is(err, ErrNotInMaint):
		// Sessions closing, idle connections not yet purged, or enabled
		// again by hand in between: try again shortly.
		return draining, false, worker.Requeue(min(t.cfg.DrainPoll, time.Second), fmt.Sprintf("deleting %s: %v", k, err))
	}
	return draining, false, err
}

// gone reports whether err says the server (or its backend) does not exist.
func gone(err error) bool {
	return errors.Is(err, ErrNoSuchServer) || errors.Is(err, ErrNoSuchBackend)
}
