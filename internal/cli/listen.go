package cli

import (
	"github.com/spf13/cobra"
	"github.com/vmglue/vmglue/eventbus"

	"github.com/vmglue/vmglue/hooks/opennebula/listen"
)

func listenCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "listen",
		Short: "Run a source that subscribes to a cloud's event stream",
		Args:  cobra.NoArgs,
	}
	c.AddCommand(listenOpenNebulaCmd(g))
	return c
}

func listenOpenNebulaCmd(g *globals) *cobra.Command {
	var metrics string
	c := &cobra.Command{
		Use:   "opennebula",
		Short: "Subscribe to oned's ZeroMQ event stream (section listen.opennebula) and publish every VM state change",
		Long: `Subscribe to oned's ZeroMQ event stream (one_hm's PUB socket, listen.opennebula.endpoint,
default tcp://127.0.0.1:2101) and publish every VM state change as an event, with no process per
event. Events are spooled (listen.opennebula.spool_dir) while NATS is away and sent when it is back.
PUB/SUB is at-most-once: what oned publishes while the listener is away is lost; with a
sweep.opennebula entry of its cloud, the listener sweeps oned's API 1s after every connect and every
listen.opennebula.sweep_interval. The stream is unauthenticated: keep it on loopback.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			// A source: NATS role hook; its sweep reads the known VMs and
			// writes the sweep's bucket: role ops.
			co, _, err := cfg.RoleConnOptions(eventbus.RoleHook, "", g.clientURL(cfg))
			if err != nil {
				return err
			}
			sco, _, err := cfg.RoleConnOptions(eventbus.RoleOps, "", g.clientURL(cfg))
			if err != nil {
				return err
			}
			log := newLogger(cfg.Log, g.stderr)
			lc := cfg.OpenNebulaListener()
			return listen.RunApp(cmd.Context(), listen.AppOptions{
				Config: lc, NATS: co, MetricsListen: metrics, SecretNames: cfg.SecretNames(),
				Sweep: listenSweep(cfg, sco, lc.Cloud, log),
				Ready: func(string) {
					if err := sdNotify("READY=1"); err != nil {
						log.Warn().Err(err).Msg("sd_notify")
					}
				},
			}, log)
		},
	}
	c.Flags().StringVar(&metrics, "metrics-listen", "", "address of the listener's /metrics (default: off)")
	return c
}
