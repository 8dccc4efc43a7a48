package listen

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/delivery"
	"github.com/vmglue/vmglue/internal/promhttpserve"
)

// AppOptions are what `vmglue listen opennebula` runs with.
type AppOptions struct {
	// Config has its defaults set and is valid.
	Config Config
	// NATS are the settings of the connection; it reconnects for ever.
	NATS eventbus.ConnOptions
	// SecretNames are the secret attribute names (nil: the defaults); the
	// challenge comes from Config.
	SecretNames *eventbus.SecretNames
	// Sweep, when set, makes the Sweeper (see Options.Sweeper) once the
	// delivery is open: the sweep publishes through the same delivery, its
	// metrics go to reg. nil: no sweep.
	Sweep func(pub Publisher, reg prometheus.Registerer) (Sweeper, error)
	// MetricsListen serves /metrics when not empty ("127.0.0.1:0" picks a
	// port).
	MetricsListen string
	// Ready is called once, after the first subscription, with the address
	// of /metrics ("" when off).
	Ready func(metricsAddr string)
	// Metrics may be nil (new ones, on the /metrics registry).
	Metrics *Metrics
}

// RunApp opens the shared resident delivery (events spooled in
// Config.SpoolDir while NATS is away, sent when it is back), serves
// /metrics, and runs the listener until ctx is cancelled.
func RunApp(ctx context.Context, o AppOptions, log zerolog.Logger) error {
	reg := prometheus.NewRegistry()
	if o.Metrics == nil {
		o.Metrics = NewMetrics(reg)
	}
	if o.NATS.Name == "" {
		o.NATS.Name = "vmglue listen opennebula"
	}
	p, err := delivery.Open(delivery.Options{Conn: o.NATS, SpoolDir: o.Config.SpoolDir,
		Log: log.With().Str("component", "delivery").Logger()})
	if err != nil {
		return fmt.Errorf("listen opennebula: %w", err)
	}
	defer p.Close()
	var sw Sweeper
	if o.Sweep != nil {
		if sw, err = o.Sweep(p, reg); err != nil {
			return fmt.Errorf("listen opennebula: %w", err)
		}
	}
	var addr string
	if o.MetricsListen != "" {
		a, stop, err := promhttpserve.Start(o.MetricsListen, reg, log)
		if err != nil {
			return err
		}
		defer stop()
		addr = a
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var g errgroup.Group
	g.Go(func() error { return p.Run(ctx) })
	g.Go(func() error {
		defer cancel()
		return Run(ctx, Options{Config: o.Config, Publisher: p, Sweeper: sw, Metrics: o.Metrics, Log: log,
			Secrets: o.Config.Secrets(o.SecretNames),
			Ready: func() {
				if o.Ready != nil {
					o.Ready(addr)
				}
			}})
	})
	return g.Wait()
}
