package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/catalog"
	"github.com/vmglue/vmglue/internal/ops"
	"github.com/vmglue/vmglue/internal/worker"
)

func replayCmd(g *globals) *cobra.Command {
	var req ops.ReplayRequest
	c := &cobra.Command{
		Use:   "replay",
		Short: "Republish stored events so that the workers converge again (--dry-run shows the plan)",
		Long: `Republish the stored events that match the filter, each to its own subject,
without its Nats-Msg-Id (the stream's duplicate window would drop it) and with
the header ` + eventbus.HeaderReplay + `: 1.

Every worker sees a replayed event, or with --worker only that worker (the
header ` + worker.HeaderForWorker + `; the others ack it unseen). That is safe:
a worker converges a VM to its newest known snapshot, never to an older event,
and changes nothing when its target is already right; it cannot roll a VM back.

A replayed event is converged with verification: a worker that can read its
target back (` + verifyingWorkers() + `) first compares the target with its
registry and repairs what drifted: a DNS record or HAProxy server deleted by
hand comes back, a DNS address changed by hand is put back. What
vmglue does not own stays untouched (dead letter "conflict"); a certificate
revoked by hand on the Puppet CA stays revoked, it is not vmglue's to
re-issue (dead letter "drift" names it). ` + "`vmglue reconcile`" + ` shows such
drift without changing anything.

At least one filter or --all is required. --dry-run prints each event that
would be republished and the count, and publishes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := req.Check(); err != nil {
				return err
			}
			if req.Worker != "" {
				cfg, err := g.load()
				if err != nil {
					return err
				}
				// Without a config the names are unknown here: a name no
				// worker has makes every worker skip the events.
				if names := cfg.Workers.Names(); len(names) > 0 && !slices.Contains(names, req.Worker) {
					return fmt.Errorf("--worker %s: not a configured worker (configured: %s)", req.Worker, strings.Join(names, ", "))
				}
			}
			return g.withJetStream("vmglue replay", func(js jetstream.JetStream) error {
				var each func(ops.StoredEvent) error
				if req.DryRun {
					each = func(e ops.StoredEvent) error {
						_, err := fmt.Fprintf(g.stdout, "would replay #%d %s\n", e.Seq, storedLine(e))
						return err
					}
				}
				n, err := ops.Replay(cmd.Context(), js, req, each)
				if err != nil {
					return err
				}
				if req.DryRun {
					_, err = fmt.Fprintf(g.stdout, "%d event(s) would be replayed (dry run: nothing published)\n", n)
				} else {
					_, err = fmt.Fprintf(g.stdout, "replayed %d event(s)\n", n)
				}
				return err
			})
		},
	}
	c.Flags().StringVar(&req.Since, "since", "", "events stored since a duration ago (1h) or a time (2026-11-22T10:00:00Z)")
	c.Flags().Uint64Var(&req.StartSequence, "start-sequence", 0, "events from this stream sequence on")
	c.Flags().BoolVar(&req.All, "all", false, "every stored event (required when no other filter is given)")
	c.Flags().StringVar(&req.Cloud, "cloud", "", "only this cloud")
	c.Flags().StringVar(&req.VM, "vm", "", "only this VM id")
	c.Flags().StringVar(&req.Kind, "type", "", "only this kind (running, deleted, ... or vm.running)")
	c.Flags().StringVar(&req.Worker, "worker", "", "only this worker ("+strings.Join(catalog.Names(), ", ")+") converges the replayed events")
	c.Flags().BoolVar(&req.DryRun, "dry-run", false, "print the events that would be republished and exit")
	return c
}

// storedLine is the readable one-line form of a stored event.
func storedLine(e ops.StoredEvent) string {
	if e.Event == nil {
		return "(unreadable event: " + e.Error + ")"
	}
	return FormatEvent(e.Event)
}

// verifyingWorkers names the catalog's workers that read their target back.
func verifyingWorkers() string {
	if v := catalog.Verifying(); len(v) > 0 {
		return strings.Join(v, ", ")
	}
	return "none"
}
