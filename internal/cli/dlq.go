package cli

import (
	"context"
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
				dls, err := worker.ListDeadLetters(cmd.Context(), js, workerName)
				if err != nil {
					return err
				}
				if !g.showSecrets {
					for i := range dls {
						dls[i].Event = eventbus.RedactEventJSON(dls[i].Event)
					}
				}
				return writeJSONOr(g.stdout, asJSON, dls, printDeadLetters)
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print one JSON array")

	retry := settleCmd(g, &workerName, "retry", "retried", worker.RetryDeadLetter,
		"Republish the original events to their subjects, then delete the dead letters",
		`Republish each dead letter's original event to its original subject, then
delete the dead letter. The event is published without its Nats-Msg-Id (the
event stream's duplicate window would silently drop it), so it is stored anew
and every worker sees it again, not only the one that gave up. That is
harmless: workers converge each VM to its newest snapshot and change nothing
that is already right. Fix the cause first, or the event comes back.`)
	drop := settleCmd(g, &workerName, "drop", "dropped", worker.DropDeadLetter,
		"Delete dead letters without republishing them", "")
	c.AddCommand(list, retry, drop)
	return c
}

// settleCmd is `dlq retry` or `dlq drop`: it applies fn to the given dead
// letters or, with --all, to every one (of --worker).
func settleCmd(g *globals, workerName *string, verb, done string, fn func(context.Context, jetstream.JetStream, uint64) error, short, long string) *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   verb + " <seq>... | --all",
		Short: short,
		Long:  long,
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return fmt.Errorf("dlq %s: give dead-letter sequence numbers (see `vmglue dlq list`) or --all", verb)
			}
			seqs, err := parseSeqs(args)
			if err != nil {
				return fmt.Errorf("dlq %s: %w", verb, err)
			}
			return g.withJetStream("vmglue dlq "+verb, func(js jetstream.JetStream) error {
				ctx := cmd.Context()
				var dls []worker.StoredDeadLetter
				if all {
					dls, err = worker.ListDeadLetters(ctx, js, *workerName)
				} else {
					dls, err = getDeadLetters(ctx, js, seqs, *workerName)
				}
				if err != nil {
					return err
				}
				for i, dl := range dls {
					if err := fn(ctx, js, dl.Seq); err != nil {
						return fmt.Errorf("%w (%d of %d %s before)", err, i, len(dls), done)
					}
					fmt.Fprintf(g.stdout, "%s #%d %s %s\n", done, dl.Seq, dl.Worker, dlVM(dl))
				}
				fmt.Fprintf(g.stdout, "%s %d dead letter(s)\n", done, len(dls))
				return nil
			})
		},
	}
	c.Flags().BoolVar(&all, "all", false, "every dead letter (of --worker)")
	return c
}

// getDeadLetters reads the given dead letters and, with a worker name,
// checks that each is that worker's: a guard against a mistyped number.
func getDeadLetters(ctx context.Context, js jetstream.JetStream, seqs []uint64, workerName string) ([]worker.StoredDeadLetter, error) {
	out := make([]worker.StoredDeadLetter, 0, len(seqs))
	for _, seq := range seqs {
		dl, err := worker.GetDeadLetter(ctx, js, seq)
		if err != nil {
			return nil, err
		}
		if workerName != "" && dl.Worker != workerName {
			return nil, fmt.Errorf("dead letter %d is worker %s's, not %s's", seq, dl.Worker, workerName)
		}
		out = append(out, dl)
	}
	return out, nil
}

// parseSeqs parses stream sequence arguments.
func parseSeqs(args []string) ([]uint64, error) {
	out := make([]uint64, 0, len(args))
	for _, a := range args {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("%q: want a sequence number (see `vmglue dlq list`)", a)
		}
		out = append(out, n)
	}
	return out, nil
}

// dlVM names the VM of a dead letter "<cloud>/<vmid>" from its event subject.
func dlVM(dl worker.StoredDeadLetter) string {
	t := strings.Split(dl.Subject, ".")
	if len(t) < 4 {
		return "?"
	}
	return t[2] + "/" + t[3]
}

func printDeadLetters(w io.Writer, dls []worker.StoredDeadLetter) error {
	if len(dls) == 0 {
		_, err := fmt.Fprintln(w, "no dead letters")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tWORKER\tVM\tKIND\tREASON\tFAILED\tDELIVERIES\tERROR")
	for _, dl := range dls {
		kind := "?"
		if t := strings.Split(dl.Subject, "."); len(t) == 5 {
			kind = t[4]
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", dl.Seq, dl.Worker, dlVM(dl), kind, dl.Reason,
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
