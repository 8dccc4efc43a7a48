package serve

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/internal/config"
)

type runner interface {
	Run(ctx context.Context) error
}

// newRunners builds one runner per configured worker.
func newRunners(cfg *config.Config, js jetstream.JetStream, reg prometheus.Registerer, log zerolog.Logger) ([]runner, error) {
	return nil, nil
}
