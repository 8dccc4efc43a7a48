package serve

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/sweep"
)

// Without a sweep section, or with a negative interval, serve does not sweep
// (only `vmglue sweep` does).
func TestSweepRunnerOff(t *testing.T) {
	tests := []struct {
		name  string
		sweep *sweep.Config
	}{
		{"no section", nil},
		{"negative interval", &sweep.Config{Interval: -1, OpenNebula: []sweep.OpenNebulaCloud{{Cloud: "one"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, closeSweep, err := sweepRunner(context.Background(), &config.Config{Sweep: tt.sweep}, nil, prometheus.NewRegistry(), zerolog.Nop())
			if err != nil || r != nil {
				t.Fatalf("runner %v, err %v; want none", r, err)
			}
			closeSweep()
		})
	}
}
