// Package hookcmd is the OpenNebula state hook of vmglue (the vmglue-hook
// binary): it reads the VM that HEM hands over, publishes its event to NATS
// JetStream, and spools the event on local disk when NATS cannot take it.
//
// # Input
//
// Register the hook with ARGUMENTS="$TEMPLATE <word>" and ARGUMENTS_STDIN=yes:
// HEM writes "<base64 VM XML> <word>" to stdin. Without ARGUMENTS_STDIN the
// same tokens come as arguments; stdin is then not read. stdin is read up to
// Options.MaxInput bytes; more is refused as invalid input.
//
// # What a run does
//
// Within Options.Timeout (default 5s), through the sources' shared delivery
// (hooks/delivery, one-shot mode): connect to NATS (no reconnect), send
// the events spooled by earlier runs (oldest first), publish this event with
// its id as Nats-Msg-Id and wait for the JetStream ack. The event's
// version.seen is the start of the run (see eventbus: ordering). If NATS cannot take it
// (down, timeout, stream missing, SIGTERM before the ack), the event is
// written to the spool (Options.SpoolDir, default /var/lib/one/vmglue/spool,
// created 0700 as the hook's user, oneadmin) and the next run, or `vmglue
// spool flush`, sends it. A re-sent event is dropped by the stream's duplicate
// window.
//
// # Configuration
//
// From the environment of onehem (the oneadmin user), overridden by flags:
//
//	VMGLUE_NATS_URL            -url            NATS URL(s), comma separated (nats://127.0.0.1:4222)
//	VMGLUE_CLOUD               -cloud          cloud name in subjects and sources (one)
//	VMGLUE_SPOOL_DIR           -spool          spool directory (/var/lib/one/vmglue/spool)
//	VMGLUE_NATS_USER           -user           NATS user
//	VMGLUE_NATS_PASSWORD                       NATS password (no flag: it would show in ps)
//	VMGLUE_NATS_PASSWORD_FILE  -password-file  file holding the password
//	VMGLUE_NATS_TOKEN                          NATS token (no flag)
//	VMGLUE_NATS_TOKEN_FILE     -token-file     file holding the token
//	VMGLUE_NATS_CREDS          -creds          NATS credentials file (JWT + nkey)
//	VMGLUE_NATS_CA             -ca             CA bundle for TLS
//	VMGLUE_HOOK_TIMEOUT        -timeout        budget of a run (5s); keep OpenNebula's TIMEOUT above it
//	                           -max-input      largest stdin accepted, in bytes
//	VMGLUE_SECRET_ATTRIBUTES   -secret-attributes   name patterns of secret attributes added to
//	                                                eventbus.DefaultSecretPatterns ("*_PIN,!BYPASS*")
//	VMGLUE_CHALLENGE_ATTRIBUTE -challenge-attribute the Puppet challenge attribute (PUPPET_CHALLENGE)
//	VMGLUE_CHALLENGE_KEY_FILE  -challenge-key-file  its key (/etc/vmglue/challenge.key, root:oneadmin 0640)
//
// # Secrets
//
// No secret attribute reaches the bus: the value of every attribute whose
// name matches a secret pattern (*PASS*, *PWD*, *SECRET*, *TOKEN*, *KEY,
// *CREDENTIAL*, *PRIVATE*, ...; SSH_PUBLIC_KEY is not one) is replaced by
// "(redacted)", and the challenge attribute by its HMAC-SHA256 keyed with
// the challenge key, which `vmglue autosign` checks with the same key.
// Without a readable key (missing, shorter than 32 bytes, readable by every
// user) the challenge attribute is left out, the event is published all
// the same, and the line says so:
// "(config: PUPPET_CHALLENGE not sent: no challenge key: ...)".
//
// # Output and exit codes
//
// One line on stderr, nothing on stdout, never a secret:
//
//	vmglue-hook: published <id> seq <n>     exit 0
//	vmglue-hook: duplicate <id>             exit 0 (already stored: a retried hook)
//	vmglue-hook: spooled <id> (<reason>)    exit 0 (NATS could not take it; kept on disk)
//	vmglue-hook: refused <id>: <reason>; kept in <spool>/quarantine
//	                                        exit 1 (NATS refuses it for good, e.g. max_payload:
//	                                        kept on disk, never retried, blocks nothing)
//	vmglue-hook: lost <id>: ...             exit 1 (neither published nor spooled)
//	vmglue-hook: invalid input: ...         exit 2 (nothing published, nothing spooled)
//
// A published or duplicate line ends with "(sent <k> spooled)" when the run
// also sent k events from the spool, and "(spool: <problem>)" when a spool
// file could not be sent, or could never be sent (then it is moved to the
// spool's quarantine directory, listed by `vmglue spool list`, and the
// files behind it are sent).
//
// Bytes of the VM XML that are not valid UTF-8, or characters XML forbids,
// are replaced by U+FFFD instead of failing the run (a DONE must not be
// lost for a tenant's malformed USER_TEMPLATE); the line then ends with
// "(input: replaced <n> malformed bytes in USER_TEMPLATE/NOTE)". Only a
// replacement in a field the event needs (ID, STATE, LCM_STATE, times)
// still makes the input invalid.
//
// # Limits
//
// An event always fits in one NATS message: the event carries at most 4 KiB
// of each USER_TEMPLATE value and 64 KiB of attributes in all (kept in name
// order), names and labels of at most 1 KiB (8 KiB of labels); what was cut
// is listed in the event's data.cut. The VM's id, state, times and NICs are
// never cut. See eventbus.MaxAttributeValue and the README's event format.
//
// A spooled line also says how many events wait and since when ("; 3
// waiting, oldest 2m0s"). A configuration problem the run worked around (an
// invalid VMGLUE_HOOK_TIMEOUT, ignored) is appended as
// "(config: ...)": a typo in HEM's environment loses no event.
//
// With -flush the hook reads no input and only sends the spool (the
// vmglue-spool-flush timer runs it so, with the hook's own settings):
//
//	vmglue-hook: flush: sent <n>[; <k> waiting, oldest <age>]   exit 0; 1 when NATS could not take them
//
// Exit 2 is also a usage error (a bad flag or cloud name). In
// OpenNebula's hook log 0 is SUCCESS; 1 and 2 are ERROR and can be retried
// with `onehook retry` once the cause is fixed.
package hookcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/delivery"
	"github.com/vmglue/vmglue/hooks/opennebula"
	"github.com/vmglue/vmglue/hooks/spool"
)

// Exit codes of Run.
const (
	ExitOK      = 0 // published, duplicate, or spooled
	ExitLost    = 1 // could neither publish nor spool the event
	ExitInvalid = 2 // invalid input or usage; nothing published or spooled
)

// Run handles one hook execution and returns the process exit code. ctx is
// cancelled on SIGTERM; a run cancelled before the ack spools the event.
func Run(ctx context.Context, opts Options, stdin io.Reader, args []string, stderr io.Writer) int {
	seen := time.Now()
	opts.SetDefaults()
	out := printer{w: stderr, secrets: opts.secrets(), notes: opts.Notes}
	if opts.FlushOnly {
		return flushOnly(ctx, &opts, out)
	}
	var in []byte
	if len(args) == 0 && stdin != nil {
		var err error
		if in, err = readInput(ctx, stdin, opts.MaxInput, opts.Timeout); err != nil {
			out.line("invalid input: %v", err)
			return ExitInvalid
		}
	}
	sec := opts.secretPolicy(&out.notes)
	ev, fix, err := opennebula.ParseHookInputRepairs(in, args, opts.Cloud, func(vm *eventbus.VM) {
		out.notes = append(out.notes, sec.Protect(vm)...)
	})
	out.input = fix.String()
	if err != nil {
		out.line("%v", inputError(err))
		return ExitInvalid
	}
	// When this run saw the VM: it orders two snapshots the cloud gives the
	// same SEQ, STIME and LAST_POLL (a NIC hotplug). Not part of the id.
	ev.Data.Version.Seen = seen.UnixNano()
	var r delivery.Report
	if do, err := opts.delivery(); err != nil {
		r.Result = delivery.Keep(opts.SpoolDir, &ev, err)
	} else {
		r = delivery.Once(ctx, do, &ev)
	}
	switch r.Outcome {
	case delivery.Published, delivery.Duplicate:
		msg := fmt.Sprintf("published %s seq %d", ev.ID, r.Sequence)
		if r.Outcome == delivery.Duplicate {
			msg = "duplicate " + ev.ID
		}
		if r.Flushed > 0 {
			msg += fmt.Sprintf(" (sent %d spooled)", r.Flushed)
		}
		if r.FlushErr != nil {
			msg += fmt.Sprintf(" (spool: %v)", r.FlushErr)
		}
		out.line("%s", msg)
		return ExitOK
	case delivery.Spooled:
		out.line("spooled %s (%s%s)", ev.ID, shortReason(ctx, r.Err, opts.Timeout), backlog(opts.SpoolDir))
		return ExitOK
	case delivery.Refused:
		out.line("refused %s: %s; kept in %s", ev.ID, shortReason(ctx, r.Err, opts.Timeout), filepath.Dir(r.Path))
		return ExitLost
	}
	out.line("lost %s: not published (%s) and not spooled: %v", ev.ID, shortReason(ctx, r.Err, opts.Timeout), r.SpoolErr)
	return ExitLost
}

// flushOnly is a -flush run: send the spool within opts.Timeout, nothing
// else. Exit 0 when it is empty afterwards (or another run is sending it),
// ExitLost when events are still waiting.
func flushOnly(ctx context.Context, opts *Options, out printer) int {
	var r delivery.Report
	if do, err := opts.delivery(); err != nil {
		r.Err = err
	} else {
		r = delivery.Once(ctx, do, nil)
	}
	switch {
	case r.Err != nil:
		out.line("flush: sent %d, not connected: %s%s", r.Flushed, shortReason(ctx, r.Err, opts.Timeout), backlog(opts.SpoolDir))
		return ExitLost
	case r.FlushErr != nil:
		out.line("flush: sent %d: %v%s", r.Flushed, r.FlushErr, backlog(opts.SpoolDir))
		return ExitLost
	}
	out.line("flush: sent %d%s", r.Flushed, backlog(opts.SpoolDir))
	return ExitOK
}

// backlog says how many events wait in the spool and since when, as
// "; 3 waiting, oldest 2h0m0s" ("" when the spool is empty or unreadable).
func backlog(dir string) string {
	es, err := spool.New(dir).List()
	if err != nil || len(es) == 0 {
		return ""
	}
	return fmt.Sprintf("; %d waiting, oldest %s", len(es), time.Since(es[0].Time).Round(time.Second))
}

// inputError words a parser error for the hook log.
func inputError(err error) string {
	if errors.Is(err, opennebula.ErrInvalidInput) {
		// "decode hook input: invalid input: token 1 ..." -> "invalid input: token 1 ..."
		msg, prefix := err.Error(), opennebula.ErrInvalidInput.Error()+": "
		if i := strings.Index(msg, prefix); i >= 0 {
			msg = msg[i+len(prefix):]
		}
		return "invalid input: " + msg
	}
	// An invalid cloud name: the hook's configuration, not its input.
	return "usage: " + err.Error()
}
