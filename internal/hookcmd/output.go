package hookcmd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
)

// maxLine bounds the one line a run writes (it is stored in the hook log).
const maxLine = 1000

// printer writes the run's single stderr line: prefixed, on one line,
// bounded, with every known secret masked.
type printer struct {
	w       io.Writer
	secrets []string
	notes   []string // configuration problems, appended to the line
	input   string   // what the parser replaced in the input, appended to the line
}

func (p printer) line(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if p.input != "" {
		s += " (input: " + p.input + ")"
	}
	if len(p.notes) > 0 {
		s += " (config: " + strings.Join(p.notes, "; ") + ")"
	}
	for _, sec := range p.secrets {
		s = strings.ReplaceAll(s, sec, "***")
	}
	s = strings.NewReplacer("\r\n", "; ", "\n", "; ", "\r", "; ").Replace(s)
	if len(s) > maxLine {
		s = s[:maxLine] + "..."
	}
	fmt.Fprintf(p.w, "vmglue-hook: %s\n", s)
}

// shortReason says in a few words why NATS did not take the event. parent is
// the run's context: cancelled means SIGTERM (HEM's TIMEOUT).
func shortReason(parent context.Context, err error, timeout time.Duration) string {
	var ne net.Error
	var cv *tls.CertificateVerificationError
	switch {
	case parent.Err() != nil:
		return "terminated before the ack"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout),
		errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("nats timeout after %s", timeout)
	case errors.Is(err, nats.ErrNoServers):
		return "nats unreachable"
	case errors.As(err, &cv):
		if errors.As(cv.Err, new(x509.UnknownAuthorityError)) {
			return "nats TLS: certificate signed by unknown authority: " + Env.CA + " must name the CA that signed the server's certificate"
		}
		return "nats TLS: " + strings.TrimPrefix(cv.Err.Error(), "x509: ")
	case errors.Is(err, nats.ErrSecureConnWanted):
		return "nats TLS: the server offers none, and " + Env.CA + " asks for it"
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return "stream " + eventbus.StreamEvents + " not provisioned"
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		// Nobody answered for the stream: it does not exist, or its
		// cluster is electing a leader (a NATS node went away).
		return "stream " + eventbus.StreamEvents + " did not answer (not provisioned, or no leader while a NATS node changes)"
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		strings.Contains(strings.ToLower(err.Error()), "authorization"):
		return "nats authorization failed"
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// readInput reads all of r, refusing more than max bytes. It gives up when
// ctx is cancelled or stdin is not closed within timeout, so a hook never
// hangs on a pipe that nobody closes.
func readInput(ctx context.Context, r io.Reader, max int64, timeout time.Duration) ([]byte, error) {
	type read struct {
		b   []byte
		err error
	}
	ch := make(chan read, 1)
	go func() {
		b, err := io.ReadAll(io.LimitReader(r, max+1))
		ch <- read{b, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case x := <-ch:
		if x.err != nil {
			return nil, fmt.Errorf("read stdin: %w", x.err)
		}
		if int64(len(x.b)) > max {
			return nil, fmt.Errorf("stdin is larger than %d bytes", max)
		}
		return x.b, nil
	case <-ctx.Done():
		return nil, errors.New("terminated while reading stdin")
	case <-t.C:
		return nil, fmt.Errorf("stdin not closed after %s", timeout)
	}
}

// UsageNotes end the hook's -h output: the exit codes and the limits of
// what it publishes.
const UsageNotes = `
Exit codes (one line on stderr): 0 published, duplicate or spooled; 1 refused
(NATS refuses the event for good: kept in <spool>/quarantine, never retried)
or lost; 2 invalid input or usage.

Limits: an event always fits in one NATS message. Each USER_TEMPLATE value is
cut to 4 KiB, attributes to 64 KiB in all (kept in name order), names and
labels to 1 KiB (labels 8 KiB in all); the event's data.cut lists what was
cut. The VM's id, state, times and NICs are never cut. Bytes that are not
valid UTF-8 (or characters XML forbids) are replaced by U+FFFD and the line
says so: "(input: replaced <n> malformed bytes in <element>)".
A spool file that can never be sent is moved to <spool>/quarantine and the
flush goes on (vmglue spool list shows it).
`
