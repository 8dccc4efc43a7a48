package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/catalog"
	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/ops"
	"github.com/vmglue/vmglue/internal/worker"
)

// reconcileOptions are the flags of `vmglue reconcile`.
type reconcileOptions struct {
	req    ops.ReconcileRequest
	worker string
	apply  bool
	json   bool
}

func reconcileCmd(g *globals) *cobra.Command {
	var o reconcileOptions
	c := &cobra.Command{
		Use:   "reconcile",
		Short: "Compare every worker's target with what it wants for each VM (--apply repairs through serve)",
		Long: `For each configured worker (or --worker), and each VM vmglue knows (its
newest snapshot or the worker's registry; --cloud, --vm select), compute what
the worker wants for the VM's newest snapshot, read the worker's objects back
from its target (DNS: signed queries to the zone's server; lb: HAProxy's
"show servers state"; puppet: the CA's certificate_status) and print the
plan, one line per object:

  missing   wanted, not in the target
  wrong     wanted, in the target with another value
  unwanted  vmglue's, in the target, not wanted
  foreign   wanted, but an object vmglue does not own is in the way
  kept      changed by hand and left so (a certificate revoked on the CA)

A worker that cannot read its target back says so. Without --apply nothing
is changed. --apply republishes, for each VM with findings, its newest
stored event as a replayed event for that worker only; serve's worker then
converges the VM with verification, as for ` + "`vmglue replay`" + `: under the VM's
lease, recorded in its registry, failures retried or dead-lettered. A
foreign object is never touched (the event is dead-lettered "conflict"),
a kept one is reported (dead letter "drift"). The repair happens in serve,
after reconcile returns; run reconcile again to see the result.

The configuration file (-c) names the workers and their targets. A progress
bar is shown on a terminal, and a summary line at the end. --json prints
one JSON object: {"plans": [...], "checked", "drifted", "errors", "applied",
"no_event" (drifted VMs without a stored event to replay, not repaired)}.
Exit status 0 also when drift was found.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			names := cfg.Workers.Names()
			if o.worker != "" {
				if !slices.Contains(names, o.worker) {
					return fmt.Errorf("--worker %s: not a configured worker (configured: %s)", o.worker, strings.Join(names, ", "))
				}
				names = []string{o.worker}
			}
			if len(names) == 0 {
				return fmt.Errorf("no worker configured: reconcile reads the workers.<name> sections of the config file (-c)")
			}
			return g.withJetStream("vmglue reconcile", func(js jetstream.JetStream) error {
				return runReconcile(cmd, g, cfg, js, names, o)
			})
		},
	}
	c.Flags().StringVar(&o.worker, "worker", "", "only this worker ("+strings.Join(catalog.Names(), ", ")+")")
	c.Flags().StringVar(&o.req.Cloud, "cloud", "", "only this cloud")
	c.Flags().StringVar(&o.req.VM, "vm", "", "only this VM id")
	c.Flags().BoolVar(&o.apply, "apply", false, "ask serve's workers to repair each VM with findings (replayed event, converged with verification)")
	c.Flags().BoolVar(&o.json, "json", false, "print one JSON object instead of text")
	return c
}

// reconcileSummary is the end of the output.
type reconcileSummary struct {
	Plans   []ops.VMPlan `json:"plans"`
	Checked int          `json:"checked"`
	Drifted int          `json:"drifted"`
	Errors  int          `json:"errors"`
	Applied int          `json:"applied"`
	// NoEvent counts drifted VMs --apply could not ask serve to repair:
	// the stream holds no event of theirs any more (max age).
	NoEvent int `json:"no_event,omitempty"`
}

func runReconcile(cmd *cobra.Command, g *globals, cfg *config.Config, js jetstream.JetStream, names []string, o reconcileOptions) error {
	ctx := cmd.Context()
	targets := make([]worker.Target, 0, len(names))
	defer func() {
		for _, t := range targets {
			if c, ok := t.(io.Closer); ok {
				_ = c.Close()
			}
		}
	}()
	log := newLogger(cfg.Log, g.stderr)
	// The workers compare markers that carry serve's installation
	// identity: the same one, read from the bus (or the config).
	installation, err := eventbus.Installation(ctx, js, cfg.Installation)
	if err != nil {
		return fmt.Errorf("installation identity: %w", err)
	}
	for _, n := range names {
		cw, _ := catalog.Lookup(n)
		t, err := cw.New(cfg.Workers[n], worker.Deps{Log: log, JS: js, Installation: installation})
		if err != nil {
			return fmt.Errorf("worker %s: %w", n, err)
		}
		targets = append(targets, t)
	}
	var bar *progressbar.ProgressBar
	progress := func(done, total int) {
		if bar == nil {
			bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(g.stderr),
				progressbar.OptionSetDescription("verifying"), progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
		}
		_ = bar.Set(done)
	}
	if f, ok := g.stderr.(*os.File); !ok || !isatty.IsTerminal(f.Fd()) {
		progress = nil
	}
	plans, err := ops.Reconcile(ctx, js, targets, o.req, progress)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	s := reconcileSummary{Plans: plans, Checked: len(plans)}
	for _, p := range plans {
		switch {
		case p.Error != "":
			s.Errors++
		case p.Drifted():
			s.Drifted++
			if !o.apply {
				continue
			}
			ok, err := ops.ApplyPlan(ctx, js, p)
			if err != nil {
				return err
			}
			if ok {
				s.Applied++
			} else {
				s.NoEvent++
			}
		}
	}
	if o.json {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	return printPlans(g.stdout, s, o.apply)
}

// printPlans prints the findings, the VMs that could not be checked, the
// workers that cannot verify, and the summary line.
func printPlans(w io.Writer, s reconcileSummary, applied bool) error {
	cannot := map[string]bool{}
	for _, p := range s.Plans {
		switch {
		case p.CannotVerify:
			cannot[p.Worker] = true
		case p.Error != "":
			fmt.Fprintf(w, "%s %s: error: %s\n", p.Worker, p.Key(), p.Error)
		}
		for _, f := range p.Findings {
			fmt.Fprintf(w, "%s %s: %s\n", p.Worker, p.Key(), f)
		}
	}
	var ws []string
	for n := range cannot {
		ws = append(ws, n)
	}
	sort.Strings(ws)
	for _, n := range ws {
		fmt.Fprintf(w, "%s: cannot read its target back: not checked\n", n)
	}
	line := fmt.Sprintf("%d VM(s) checked: %d with drift, %d could not be checked", s.Checked, s.Drifted, s.Errors)
	if applied {
		line += fmt.Sprintf("; %d repair(s) requested from serve", s.Applied)
		if s.NoEvent > 0 {
			line += fmt.Sprintf(", %d not: no stored event of the VM left to replay", s.NoEvent)
		}
	} else {
		line += "; nothing changed (--apply repairs)"
	}
	_, err := fmt.Fprintln(w, line)
	return err
}
