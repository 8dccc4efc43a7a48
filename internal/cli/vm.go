package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/vmglue/vmglue/internal/ops"
	"github.com/vmglue/vmglue/internal/worker"
)

func vmCmd(g *globals) *cobra.Command {
	var cloud string
	var asJSON bool
	c := &cobra.Command{
		Use:   "vm <id>",
		Short: "A VM's timeline, newest snapshot, what each worker applied, and its dead letters",
		Long: `Show one VM: every stored event of it, the newest snapshot (what the workers
converge to), each worker's registry record (applied and pending objects, last
error) and its dead letters. Without --cloud, every cloud with a VM of that id
is shown.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			return g.withJetStream("vmglue vm", func(js jetstream.JetStream) error {
				reps, err := ops.VMReports(cmd.Context(), js, ops.VMRequest{Cloud: cloud, ID: args[0],
					Workers: cfg.Workers.Names(), ShowSecrets: g.showSecrets, Secrets: g.secrets})
				if err != nil {
					return err
				}
				return writeJSONOr(g.stdout, asJSON, reps, printVMReports)
			})
		},
	}
	c.Flags().StringVar(&cloud, "cloud", "", "only this cloud")
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON document (an array, one element per cloud)")
	return c
}

func printVMReports(w io.Writer, reps []ops.VMReport) error {
	for _, r := range reps {
		printVMReport(w, &r)
	}
	return nil
}

func printVMReport(w io.Writer, r *ops.VMReport) {
	name := ""
	if r.Snapshot != nil {
		name = " " + r.Snapshot.Name
	}
	fmt.Fprintf(w, "vm %s/%s%s\n", r.Cloud, r.ID, name)
	fmt.Fprintf(w, "  timeline (%d event(s)):\n", len(r.Timeline))
	for _, e := range r.Timeline {
		fmt.Fprintf(w, "    #%d %s\n", e.Seq, storedLine(e))
	}
	if s := r.Snapshot; s != nil {
		changed := "-"
		if s.Version.Changed != 0 {
			changed = time.Unix(0, s.Version.Changed).UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "  snapshot: %s state=%s/%s host=%s version seq=%d changed=%s deleted=%t\n",
			s.Kind, s.State, s.LCMState, s.Host, s.Version.Seq, changed, s.Deleted())
	} else {
		fmt.Fprintln(w, "  snapshot: none")
	}
	names := make([]string, 0, len(r.Workers))
	for n := range r.Workers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		printRecord(w, n, r.Workers[n])
	}
	fmt.Fprintf(w, "  dead letters (%d):\n", len(r.DeadLetters))
	for _, dl := range r.DeadLetters {
		fmt.Fprintf(w, "    #%d %s %s %s (event #%d, %d deliveries): %s\n", dl.Seq, dl.Worker,
			dl.FailedAt.UTC().Format(time.RFC3339), dl.Reason, dl.StreamSeq, dl.Deliveries, oneLine(dl.Error))
	}
}

func printRecord(w io.Writer, name string, rec *worker.Record) {
	if rec == nil {
		fmt.Fprintf(w, "  worker %s: nothing recorded\n", name)
		return
	}
	fmt.Fprintf(w, "  worker %s: %d applied, %d pending, updated %s by event %s\n",
		name, len(rec.Applied), len(rec.Pending), rec.Updated.UTC().Format(time.RFC3339), rec.EventID)
	for _, set := range []struct {
		label string
		objs  worker.Objects
	}{{"applied", rec.Applied}, {"pending", rec.Pending}} {
		keys := make([]string, 0, len(set.objs))
		for k := range set.objs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "    %s %s = %s\n", set.label, k, set.objs[k])
		}
	}
	if rec.Error != "" {
		fmt.Fprintf(w, "    last error: %s\n", oneLine(rec.Error))
	}
	if wt := rec.Waiting; wt != nil {
		fmt.Fprintf(w, "    %s: waiting since %s for %s to finish first (runtime.teardown_order)\n",
			wt.Kind, wt.Since.UTC().Format(time.RFC3339), strings.Join(wt.For, ", "))
	}
}
