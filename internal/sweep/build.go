package sweep

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/hooks/opennebula/api"
)

// Build makes one Sweeper per configured cloud, or only for the cloud named
// only (an error if it is not configured). It does not call the clouds yet.
// close releases the API clients.
func Build(ctx context.Context, c *Config, only string, js jetstream.JetStream, pub Publisher, m *Metrics, log zerolog.Logger) (sweepers []*Sweeper, close func(), err error) {
	var closers []func()
	close = func() {
		for _, f := range closers {
			f()
		}
	}
	protect := c.protect()
	add := func(cloud Cloud) error {
		s, err := New(ctx, cloud, js, pub, c.Options(), m, log)
		if err == nil {
			sweepers = append(sweepers, s)
		}
		return err
	}
	for i := range c.OpenNebula {
		o := &c.OpenNebula[i]
		if only != "" && o.Cloud != only {
			continue
		}
		cl, err := api.New(o.options(protect))
		if err != nil {
			close()
			return nil, nil, fmt.Errorf("sweep.opennebula[%d] (%s): %w", i, o.Cloud, err)
		}
		closers = append(closers, cl.Close)
		if err := add(NewOpenNebula(o.Cloud, cl)); err != nil {
			close()
			return nil, nil, err
		}
	}
	for i := range c.OpenStack {
		o := &c.OpenStack[i]
		if only != "" && o.Cloud != only {
			continue
		}
		if err := add(newOpenStack(o, protect)); err != nil {
			close()
			return nil, nil, err
		}
	}
	if only != "" && len(sweepers) == 0 {
		return nil, nil, fmt.Errorf("cloud %s: not in the sweep section (configured: %v)", only, c.Clouds())
	}
	return sweepers, close, nil
}

// Loop sweeps every cloud at once and then every interval until ctx ends.
// A failed sweep is logged (by Run) and retried at the next tick.
func Loop(ctx context.Context, sweepers []*Sweeper, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for _, s := range sweepers {
			if ctx.Err() != nil {
				return
			}
			_, _ = s.Sweep(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
