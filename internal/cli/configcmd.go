package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func configCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Configuration commands"}
	c.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Check the config file and print the effective configuration (secrets are never printed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			g.defaultWorkers(cfg) // what serve runs without a file
			fmt.Fprint(g.stdout, cfg.String())
			return nil
		},
	})
	return c
}
