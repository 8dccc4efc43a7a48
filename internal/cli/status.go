package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/vmglue/vmglue/internal/ops"
)

func statusCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Streams, worker consumers, registries and dead letters at a glance",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withJetStream("vmglue status", func(js jetstream.JetStream) error {
				st, err := ops.GetStatus(cmd.Context(), js)
				if err != nil {
					return err
				}
				return writeJSONOr(g.stdout, asJSON, st, printStatus)
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON document")
	return c
}

func printStatus(w io.Writer, s *ops.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tMESSAGES\tBYTES\tFIRST\tLAST")
	for _, st := range s.Streams {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", st.Name, st.Messages, st.Bytes, fmtTime(st.First), fmtTime(st.Last))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "WORKER\tCONSUMER\tPENDING\tACK PENDING\tREDELIVERED\tLAST DELIVERED\tRECORDS\tDEAD LETTERS")
	for _, ws := range s.Workers {
		c := ws.Consumer
		if c == nil {
			fmt.Fprintf(tw, "%s\t(none)\t-\t-\t-\t-\t%d\t%d\n", ws.Worker, ws.Records, ws.DeadLetters)
			continue
		}
		last := "-"
		if c.LastDelivered > 0 {
			last = fmt.Sprintf("#%d %s", c.LastDelivered, fmtTime(c.LastActive))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%d\t%d\n", ws.Worker, c.Name, c.Pending, c.AckPending,
			c.Redelivered, last, ws.Records, ws.DeadLetters)
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "VMs known:\t%d\n", s.VMs)
	return tw.Flush()
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
