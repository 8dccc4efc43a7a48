package serve

import (
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
)

// logReplicas says what provisioning found: one info line, one more when
// it raised replicas, and one warning line when the operator should change
// something (one replica on a cluster, more replicas kept than configured).
func logReplicas(log zerolog.Logger, url string, want int, r eventbus.Replicas) {
	ev := log.Info().Str("nats", eventbus.RedactURL(url)).Int("replicas", want)
	if r.Cluster != "" {
		ev = ev.Str("cluster", r.Cluster)
	}
	ev.Msg("streams and buckets provisioned")
	if len(r.Scaled) > 0 {
		log.Info().Strs("scaled", r.Scaled).Msgf("replicas raised to nats.stream.replicas (%d)", want)
	}
	if r.Warning != "" {
		log.Warn().Msg(r.Warning)
	}
}
