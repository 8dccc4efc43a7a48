package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/vmglue/vmglue/eventbus"
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
				n, err := sp.Flush(cmd.Context(), func(ctx context.Context, ev *eventbus.Event) error {
					_, err := eventbus.Publish(ctx, js, ev)
					return err
				})
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
		Short: "List the spooled events, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			entries, err := spool.New(dir).List()
			if err != nil {
				return err
			}
			for _, e := range entries {
				fmt.Fprintf(g.stdout, "%s  %s  %s\n", e.Time.UTC().Format(time.RFC3339), e.ID, e.Name)
			}
			return nil
		},
	}
	c.PersistentFlags().StringVar(&dir, "dir", dir, "spool directory (env VMGLUE_SPOOL_DIR)")
	c.AddCommand(flush, list)
	return c
}
