package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/puppet"
)

// DefaultAutosignTimeout is the one deadline of `vmglue autosign`, from
// start to decision: connect to NATS, open the bucket, look the VM up. An
// agent waits for its certificate while Puppet Server waits for the policy,
// so a NATS that is down, or answers while JetStream does not, must refuse
// fast, never sign. A lookup takes about a millisecond with the certname
// index, 140 ms for a pass over 10,000 snapshots.
const DefaultAutosignTimeout = 800 * time.Millisecond

func autosignCmd(g *globals) *cobra.Command {
	timeout := DefaultAutosignTimeout
	c := &cobra.Command{
		Use:   "autosign <certname>",
		Short: "Puppet Server's policy-based autosign executable: sign only CSRs of known, live VMs",
		Long: `Puppet Server runs this as its policy-based autosign executable (the "autosign"
setting of puppet.conf, through a wrapper that sets VMGLUE_CONFIG): the certname
is the argument, the CSR PEM comes on stdin.

It signs only when the CSR's CN is the certname and a VM with that certname
(workers.puppet.certname) is known to vmglue and booting or booted (starting,
running, changing, migrating; never a VM that only exists, PENDING or HOLD);
with workers.puppet.autosign.require_challenge the CSR's challengePassword must
match the VM's attribute too, checked with the challenge key
(workers.puppet.autosign.challenge_key_file). Signing binds the certname to the
VM and the CSR's public key (bucket VMGLUE_CERTBINDINGS): a certname another
live VM holds is refused, and the puppet worker revokes a certificate only for
the VM it is bound to. It writes one line to stderr (Puppet Server logs it).

VMGLUE_NATS_URL (or --server) in Puppet Server's environment overrides nats.url
of the config.

Exit codes: 0 sign, 1 refuse, 2 error (bad usage, no workers.puppet section,
NATS, JetStream or its bucket unreachable, no answer within --timeout, no
readable challenge key with require_challenge). Anything
but 0 refuses: it never signs when it cannot look the VM up.`,
		Args: cobra.ArbitraryArgs, // puppet.Main checks them: a usage error is exit 2
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := runAutosign(cmd.Context(), g, args, cmd.InOrStdin(), timeout); code != puppet.ExitSign {
				return &exitError{code: code}
			}
			return nil
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", DefaultAutosignTimeout,
		"deadline for the whole decision (connect, bucket, lookup); past it the CSR is refused (exit 2)")
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: puppet.ExitError, err: err}
	})
	return c
}

// runAutosign wires the configuration and the VM lookup to puppet.Main and
// returns its exit code. Everything after the configuration is loaded
// shares one deadline, timeout. Every failure before the decision is
// ExitError with one "refused" line on stderr.
func runAutosign(ctx context.Context, g *globals, args []string, stdin io.Reader, timeout time.Duration) int {
	if len(args) != 1 {
		// Main checks the arguments before it uses the lookup.
		return puppet.Main(ctx, args, stdin, g.stderr, puppet.Policy{})
	}
	fail := func(err error) int {
		fmt.Fprintf(g.stderr, "refused %s: %s\n", quoteCertname(args[0]), strings.ReplaceAll(err.Error(), "\n", "; "))
		return puppet.ExitError
	}
	if timeout <= 0 {
		return fail(fmt.Errorf("--timeout %s: must be positive", timeout))
	}
	cfg, err := g.load()
	if err != nil {
		return fail(err)
	}
	pc, _ := cfg.Workers["puppet"].(*puppet.Config)
	if pc == nil {
		return fail(errors.New("workers.puppet is not configured: autosign needs its certname template and policy"))
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// late names the deadline when it is what failed: a stuck JetStream
	// otherwise reads as a bare "context deadline exceeded".
	late := func(what string, err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: no answer within --timeout %s: %w", what, timeout, err)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	nc, err := g.connect(cfg, eventbus.RoleAutosign, "vmglue autosign", timeout)
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(fmt.Errorf("jetstream: %w", err))
	}
	kv, err := js.KeyValue(ctx, eventbus.BucketVMs)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		return fail(fmt.Errorf("open bucket %s: not found on this NATS (is vmglue serve using it?): %w", eventbus.BucketVMs, err))
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.Is(err, nats.ErrNoResponders):
		return fail(fmt.Errorf("open bucket %s: JetStream is not enabled on this NATS (account): %w", eventbus.BucketVMs, err))
	case err != nil:
		return fail(late("open bucket "+eventbus.BucketVMs, err))
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
	// Signing binds the certname to the VM: no binding, no signature.
	binder, err := puppet.OpenBindings(ctx, js)
	if err != nil {
		return fail(late("open certificate bindings", err))
	}
	p := puppet.Policy{Lookup: lookup, Binder: binder, Config: pc.Autosign}
	if pc.Autosign.RequireChallenge {
		p.ChallengeKey, p.KeyErr = eventbus.ReadChallengeKey(pc.Autosign.ChallengeKeyFile)
	}
	return puppet.Main(ctx, args, stdin, g.stderr, p)
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
