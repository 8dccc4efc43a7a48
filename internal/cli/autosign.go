package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/puppet"
)

// Time limits of `vmglue autosign`. An agent waits for its certificate while
// Puppet Server waits for the policy: an unreachable NATS must refuse fast,
// never sign.
const (
	AutosignConnectTimeout = 500 * time.Millisecond
	AutosignLookupTimeout  = 5 * time.Second
)

func autosignCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "autosign <certname>",
		Short: "Puppet Server's policy-based autosign executable: sign only CSRs of known, live VMs",
		Long: `Puppet Server runs this as its policy-based autosign executable (the "autosign"
setting of puppet.conf, through a wrapper that sets VMGLUE_CONFIG): the certname
is the argument, the CSR PEM comes on stdin.

It signs only when the CSR's CN is the certname and a VM with that certname
(workers.puppet.certname) is known to vmglue and live; with
workers.puppet.autosign.require_challenge the CSR's challengePassword must match
the VM's attribute too. It writes one line to stderr (Puppet Server logs it).

Exit codes: 0 sign, 1 refuse, 2 error (bad usage, no workers.puppet section,
NATS or its bucket unreachable). Anything but 0 refuses: it never signs when it
cannot look the VM up.`,
		Args: cobra.ArbitraryArgs, // puppet.Main checks them: a usage error is exit 2
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := runAutosign(cmd.Context(), g, args, cmd.InOrStdin()); code != puppet.ExitSign {
				return &exitError{code: code}
			}
			return nil
		},
	}
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: puppet.ExitError, err: err}
	})
	return c
}

// runAutosign wires the configuration and the VM lookup to puppet.Main and
// returns its exit code. Every failure before the decision is ExitError
// with one "refused" line on stderr.
func runAutosign(ctx context.Context, g *globals, args []string, stdin io.Reader) int {
	if len(args) != 1 {
		// Main checks the arguments before it uses the lookup.
		return puppet.Main(ctx, args, stdin, g.stderr, nil, puppet.AutosignConfig{})
	}
	fail := func(err error) int {
		fmt.Fprintf(g.stderr, "refused %s: %s\n", quoteCertname(args[0]), strings.ReplaceAll(err.Error(), "\n", "; "))
		return puppet.ExitError
	}
	cfg, err := g.load()
	if err != nil {
		return fail(err)
	}
	pc := cfg.Workers.Puppet
	if pc == nil {
		return fail(errors.New("workers.puppet is not configured: autosign needs its certname template and policy"))
	}
	co, err := cfg.ConnOptions("vmglue autosign", g.clientURL(cfg))
	if err != nil {
		return fail(err)
	}
	co.Timeout = AutosignConnectTimeout
	nc, err := eventbus.Connect(co, false)
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, AutosignLookupTimeout)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(fmt.Errorf("jetstream: %w", err))
	}
	kv, err := js.KeyValue(ctx, eventbus.BucketVMs)
	if err != nil {
		return fail(fmt.Errorf("open bucket %s: %w", eventbus.BucketVMs, err))
	}
	lookup, err := puppet.NewKVLookup(kv, *pc)
	if err != nil {
		return fail(err)
	}
	// The index is an accelerator: without it (a serve older than it),
	// every lookup is a pass over the snapshots.
	if idx, err := puppet.OpenCertIndex(ctx, js); err == nil {
		lookup.UseIndex(idx)
	}
	return puppet.Main(ctx, args, stdin, g.stderr, lookup, pc.Autosign)
}

// quoteCertname quotes a certname for a log line, cut to a sane length:
// it comes from the agent and is not validated yet.
func quoteCertname(s string) string {
	const maxLen = 80
	if len(s) > maxLen {
		s = s[:maxLen] + "..."
	}
	return strconv.Quote(s)
}
