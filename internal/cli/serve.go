package cli

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/vmglue/vmglue/internal/serve"
)

func serveCmd(g *globals) *cobra.Command {
	var listen, dataDir, metrics, cpuProfile string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the workers, the embedded NATS server (unless nats.url is set), /metrics, /healthz and the operator's page /ui/",
		Long: `Run the workers, the embedded NATS server (unless nats.url is set), /metrics, /healthz and the
operator's page /ui/ (README "Operator's page").

Without a configuration file (no --config, no VMGLUE_CONFIG) serve runs the
monitor worker's Prometheus file_sd output: the IPv4 address of every running VM
with port 9100 in <data-dir>/file_sd/node.json. A configuration file replaces
that default.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.NATS.Embedded.Listen = listen
			}
			if dataDir != "" {
				cfg.NATS.Embedded.DataDir = dataDir
			}
			g.defaultWorkers(cfg)
			if cmd.Flags().Changed("metrics-listen") {
				cfg.Metrics.Listen = metrics
			}
			log := newLogger(cfg.Log, g.stderr)
			if cpuProfile != "" {
				stop, err := startCPUProfile(cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			ready := func(serve.Info) {
				if err := sdNotify("READY=1"); err != nil {
					log.Warn().Err(err).Msg("sd_notify")
				}
			}
			return serve.Run(cmd.Context(), serve.Options{Config: cfg, Ready: ready}, log)
		},
	}
	c.Flags().StringVar(&listen, "nats-listen", "", "address of the embedded NATS server (default 127.0.0.1:4222)")
	c.Flags().StringVar(&dataDir, "data-dir", "", "data directory of the embedded NATS server (default /var/lib/vmglue as root)")
	c.Flags().StringVar(&metrics, "metrics-listen", "", "address of /metrics and /healthz (default 127.0.0.1:9464; empty turns them off)")
	c.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile (go tool pprof) of the whole run to this file")
	_ = c.Flags().MarkHidden("cpuprofile") // for the benches (bench/dns -serve-cpuprofile)
	return c
}

// startCPUProfile profiles the process into path until the returned stop.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("start cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}
