package cli

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/vmglue/vmglue/hooks/delivery"
	"github.com/vmglue/vmglue/hooks/spool"
)

// DefaultSpoolDir is the hook's default spool directory.
const DefaultSpoolDir = "/var/lib/one/vmglue/spool"

func spoolCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "spool", Short: "The hook's local spool of events NATS could not take"}
	dir := os.Getenv("VMGLUE_SPOOL_DIR")
	if dir == "" {
		dir = DefaultSpoolDir
	}
	flush := &cobra.Command{
		Use:   "flush",
		Short: "Send the spooled events, oldest first, removing each after its ack",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withJetStream("vmglue spool flush", func(js jetstream.JetStream) error {
				sp := spool.New(dir)
				n, err := sp.Flush(cmd.Context(), delivery.SpoolPublish(js, 0))
				if errors.Is(err, spool.ErrBusy) {
					fmt.Fprintf(g.stdout, "%s: another process is sending the spool\n", dir)
					return nil
				}
				fmt.Fprintf(g.stdout, "sent %d spooled event(s) from %s\n", n, dir)
				if err != nil {
					return fmt.Errorf("flush %s: %w", dir, err)
				}
				return nil
			})
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the spooled events, oldest first, then the quarantined files and why",
		Long: `List the spooled events, oldest first, one a line: "<time>  <event id>  <file>".
Then the files in the spool's quarantine directory, which are never sent (the bus
refused them for good, e.g. larger than max_payload, or they cannot be decoded):
"quarantined  <time>  <file>  <reason>". Move a quarantined file back into the
spool directory to send it again once the cause is fixed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sp := spool.New(dir)
			entries, err := sp.List()
			if err != nil {
				return err
			}
			for _, e := range entries {
				fmt.Fprintf(g.stdout, "%s  %s  %s\n", e.Time.UTC().Format(time.RFC3339), e.ID, e.Name)
			}
			qs, err := sp.ListQuarantined()
			if err != nil {
				return err
			}
			for _, q := range qs {
				fmt.Fprintf(g.stdout, "quarantined  %s  %s  %s\n", q.Time.UTC().Format(time.RFC3339), q.Name, q.Reason)
			}
			return nil
		},
	}
	c.PersistentFlags().StringVar(&dir, "dir", dir, "spool directory (env VMGLUE_SPOOL_DIR)")
	c.AddCommand(flush, list)
	return c
}
