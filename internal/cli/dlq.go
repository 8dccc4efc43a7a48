package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/ops"
	"github.com/vmglue/vmglue/internal/worker"
)

func dlqCmd(g *globals) *cobra.Command {
	var workerName string
	c := &cobra.Command{
		Use:   "dlq",
		Short: "The dead letters: events a worker gave up on (" + eventbus.StreamDLQ + ")",
	}
	c.PersistentFlags().StringVar(&workerName, "worker", "", "only this worker's dead letters")

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the dead letters, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withJetStream("vmglue dlq list", func(js jetstream.JetStream) error {
				dls, err := ops.DeadLetters(cmd.Context(), js, ops.DeadLetterRequest{Worker: workerName, ShowSecrets: g.showSecrets, Secrets: g.secrets})
				if err != nil {
					return err
				}
				return writeJSONOr(g.stdout, asJSON, dls, printDeadLetters)
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print one JSON array")

	retry := settleCmd(g, &workerName, ops.Retry,
		"Republish the original events to their subjects, then delete the dead letters",
		`Republish each dead letter's original event to its original subject, then
delete the dead letter. The event is published without its Nats-Msg-Id (the
event stream's duplicate window would silently drop it), so it is stored anew
and every worker sees it again, not only the one that gave up. That is
harmless: workers converge each VM to its newest snapshot and change nothing
that is already right. Fix the cause first, or the event comes back.`)
	drop := settleCmd(g, &workerName, ops.Drop, "Delete dead letters without republishing them", "")
	c.AddCommand(list, retry, drop)
	return c
}

// settleCmd is `dlq retry` or `dlq drop`: it settles the given dead
// letters or, with --all, every one (of --worker).
func settleCmd(g *globals, workerName *string, action ops.Settle, short, long string) *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   string(action) + " <seq>... | --all",
		Short: short,
		Long:  long,
		RunE: func(cmd *cobra.Command, args []string) error {
			req := ops.SettleRequest{Action: action, Seqs: make([]uint64, len(args)), All: all, Worker: *workerName}
			if err := req.Check(); err != nil { // before parsing: --all with arguments is refused as such
				return err
			}
			if err := parseSeqs(req.Seqs, args); err != nil {
				return fmt.Errorf("dlq %s: %w", action, err)
			}
			return g.withJetStream("vmglue dlq "+string(action), func(js jetstream.JetStream) error {
				n, err := ops.SettleDeadLetters(cmd.Context(), js, req, func(dl worker.StoredDeadLetter) error {
					_, err := fmt.Fprintf(g.stdout, "%s #%d %s %s\n", action.Done(), dl.Seq, dl.Worker, ops.DeadLetterVM(dl))
					return err
				})
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(g.stdout, "%s %d dead letter(s)\n", action.Done(), n)
				return err
			})
		},
	}
	c.Flags().BoolVar(&all, "all", false, "every dead letter (of --worker)")
	return c
}

// parseSeqs parses dead-letter sequence arguments into seqs.
func parseSeqs(seqs []uint64, args []string) error {
	for i, a := range args {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 {
			return fmt.Errorf("%q: want a sequence number (see `vmglue dlq list`)", a)
		}
		seqs[i] = n
	}
	return nil
}

func printDeadLetters(w io.Writer, dls []worker.StoredDeadLetter) error {
	if len(dls) == 0 {
		_, err := fmt.Fprintln(w, "no dead letters")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tWORKER\tVM\tKIND\tREASON\tFAILED\tDELIVERIES\tERROR")
	for _, dl := range dls {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", dl.Seq, dl.Worker, ops.DeadLetterVM(dl), ops.DeadLetterKind(dl), dl.Reason,
			dl.FailedAt.UTC().Format(time.RFC3339), dl.Deliveries, oneLine(dl.Error))
	}
	return tw.Flush()
}

// oneLine keeps an error message on one table row.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

// writeJSONOr prints v with writeJSON when asJSON, else as text.
func writeJSONOr[T any](w io.Writer, asJSON bool, v T, text func(io.Writer, T) error) error {
	if asJSON {
		return writeJSON(w, v)
	}
	return text(w, v)
}

// writeJSON prints v as one indented JSON document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	return nil
}
