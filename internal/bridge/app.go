package bridge

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/delivery"
	"github.com/vmglue/vmglue/internal/promhttpserve"
)

// AppOptions are what `vmglue bridge openstack` runs with.
type AppOptions struct {
	Config   Config
	NATS     eventbus.ConnOptions
	Password string // of the AMQP user
	// MetricsListen serves /metrics when not empty ("127.0.0.1:0" picks a port).
	MetricsListen string
	// Ready is called once, when the bridge first consumes, with the
	// address of /metrics ("" when off).
	Ready   func(metricsAddr string)
	Metrics *Metrics // nil: new ones
	// Secrets keeps secret metadata off the bus (zero: the defaults).
	Secrets eventbus.Secrets
}

// RunApp opens the shared delivery (hooks/delivery: reconnecting forever,
// spooling to Config.SpoolDir while NATS is away, sending the spool when it
// is back), sets up the lookup and /metrics, and runs the bridge until ctx
// is done.
func RunApp(ctx context.Context, o AppOptions, log zerolog.Logger) error {
	reg := prometheus.NewRegistry()
	if o.Metrics == nil {
		o.Metrics = NewMetrics(reg)
	}
	o.NATS.Name = "vmglue bridge openstack"
	pub, err := delivery.Open(delivery.Options{Conn: o.NATS, SpoolDir: o.Config.SpoolDir,
		Log: log.With().Str("component", "delivery").Logger()})
	if err != nil {
		return err
	}
	defer pub.Close()
	// Dead letters go straight to JetStream, on a connection of their own.
	dlConn := o.NATS
	dlConn.Name = "vmglue bridge openstack (dead letters)"
	nc, err := eventbus.Connect(dlConn, true)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	var lookup Lookup
	if o.Config.Lookup.Enabled {
		l, err := NewNovaLookup(ctx, o.Config.Lookup)
		if err != nil {
			return err
		}
		lookup = l
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
	var once sync.Once
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return pub.Run(ctx) }) // sends the spool when NATS is back
	g.Go(func() error {
		return Run(ctx, Options{
			Config: o.Config, Password: o.Password, Secrets: o.Secrets, Publisher: pub, DeadLetterer: JetStream{JS: js},
			Lookup: lookup, Metrics: o.Metrics,
			Ready: func() {
				once.Do(func() {
					if o.Ready != nil {
						o.Ready(addr)
					}
				})
			},
		}, log)
	})
	return g.Wait()
}
