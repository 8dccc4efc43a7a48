package cli

import "github.com/spf13/cobra"

func spoolCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "spool", Short: "The hook's local spool of events NATS could not take"}
	return c
}
