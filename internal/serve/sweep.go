package serve

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/sweep"
)

// sweepRunner is the periodic sweep of the config's clouds (nil when there
// is no sweep section or its interval is negative), and what closes it.
func sweepRunner(ctx context.Context, cfg *config.Config, js jetstream.JetStream, reg prometheus.Registerer, log zerolog.Logger) (runner, func(), error) {
	c := cfg.Sweep
	if c == nil || c.Interval < 0 {
		return nil, func() {}, nil
	}
	m, err := sweep.NewMetrics(reg)
	if err != nil {
		return nil, nil, fmt.Errorf("sweep: register metrics: %w", err)
	}
	sweepers, closeAll, err := sweep.Build(ctx, c, "", js, sweep.JetStreamPublisher{JS: js}, m, log)
	if err != nil {
		return nil, nil, err
	}
	log.Info().Strs("clouds", c.Clouds()).Dur("interval", c.Interval).Msg("sweeping the clouds' APIs")
	return runFunc(func(ctx context.Context) error {
		sweep.Loop(ctx, sweepers, c.Interval)
		return nil
	}), closeAll, nil
}
