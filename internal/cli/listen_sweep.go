package cli

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/opennebula/listen"
	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/sweep"
)

// listenSweep returns what makes the listener's sweep of cloud: the
// sweep.opennebula entry of that cloud, publishing through the listener's
// delivery; nil when the config sweeps no such cloud.
func listenSweep(cfg *config.Config, co eventbus.ConnOptions, cloud string, log zerolog.Logger) func(listen.Publisher, prometheus.Registerer) (listen.Sweeper, error) {
	if cfg.Sweep == nil || !slices.ContainsFunc(cfg.Sweep.OpenNebula, func(o sweep.OpenNebulaCloud) bool { return o.Cloud == cloud }) {
		return nil
	}
	return func(pub listen.Publisher, reg prometheus.Registerer) (listen.Sweeper, error) {
		m, err := sweep.NewMetrics(reg)
		if err != nil {
			return nil, fmt.Errorf("sweep metrics: %w", err)
		}
		return &lazySweep{cfg: cfg.Sweep, co: co, cloud: cloud, pub: pub, m: m, log: log}, nil
	}
}

// lazySweep builds its sweep.Sweeper at the first sweep, and again after a
// failure: NATS (the sweep's buckets) may be down when the listener starts.
type lazySweep struct {
	cfg   *sweep.Config
	co    eventbus.ConnOptions
	cloud string
	pub   listen.Publisher
	m     *sweep.Metrics
	log   zerolog.Logger

	mu sync.Mutex
	s  *sweep.Sweeper
	nc *nats.Conn
}

// Sweep implements listen.Sweeper.
func (l *lazySweep) Sweep(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s == nil {
		co := l.co
		co.Name = "vmglue listen opennebula sweep"
		nc, err := eventbus.Connect(co, false)
		if err != nil {
			return err
		}
		js, err := jetstream.New(nc)
		if err == nil {
			var ss []*sweep.Sweeper
			ss, _, err = sweep.Build(ctx, l.cfg, l.cloud, js, l.pub, l.m, l.log)
			if err == nil {
				l.s, l.nc = ss[0], nc
			}
		}
		if err != nil {
			nc.Close()
			return fmt.Errorf("prepare the sweep: %w", err)
		}
	}
	_, err := l.s.Sweep(ctx)
	return err
}
