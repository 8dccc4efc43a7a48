package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/bridge"
)

func bridgeCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "bridge",
		Short: "Run a source that turns a cloud's notifications into events",
		Args:  cobra.NoArgs,
	}
	c.AddCommand(bridgeOpenStackCmd(g))
	return c
}

func bridgeOpenStackCmd(g *globals) *cobra.Command {
	var metrics string
	c := &cobra.Command{
		Use:   "openstack",
		Short: "Consume Nova's notifications from RabbitMQ (section bridge.openstack) and publish them as events",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if cfg.Bridge.OpenStack == nil {
				return errors.New("bridge.openstack: no such section in the config (see README, \"OpenStack\")")
			}
			bc := *cfg.Bridge.OpenStack
			password, err := eventbus.ReadSecret(bc.AMQP.PasswordFile, bc.AMQP.PasswordEnv)
			if err != nil {
				return fmt.Errorf("bridge.openstack.amqp.password_file: %w", err)
			}
			// A source: NATS role hook (publish VM events, nothing else).
			co, _, err := cfg.RoleConnOptions(eventbus.RoleHook, "", g.clientURL(cfg))
			if err != nil {
				return err
			}
			log := newLogger(cfg.Log, g.stderr)
			return bridge.RunApp(cmd.Context(), bridge.AppOptions{
				Config: bc, NATS: co, Password: password, MetricsListen: metrics,
				Secrets: eventbus.Secrets{Names: cfg.SecretNames()},
				Ready: func(string) {
					if err := sdNotify("READY=1"); err != nil {
						log.Warn().Err(err).Msg("sd_notify")
					}
				},
			}, log)
		},
	}
	c.Flags().StringVar(&metrics, "metrics-listen", "", "address of the bridge's /metrics (default: off)")
	return c
}
