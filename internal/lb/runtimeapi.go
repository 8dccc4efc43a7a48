package lb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Errors of the runtime API, from HAProxy 2.6's verbatim replies.
var (
	// ErrNoSuchServer: "No such server."
	ErrNoSuchServer = errors.New("no such server")
	// ErrNoSuchBackend: "No such backend."
	ErrNoSuchBackend = errors.New("no such backend")
	// ErrExists: "Already exists a server with the same name in backend."
	ErrExists = errors.New("a server with the same name exists")
	// ErrConnectionsAttached: "Server still has connections attached to it".
	ErrConnectionsAttached = errors.New("server still has connections attached")
	// ErrNotInMaint: "Only servers in maintenance mode can be deleted."
	ErrNotInMaint = errors.New("server not in maintenance mode")
	// ErrRejected is any other error reply; the reply follows in the message.
	ErrRejected = errors.New("haproxy rejected the command")
	// ErrUnreachable wraps a failure to talk to the runtime API at all.
	ErrUnreachable = errors.New("haproxy runtime api unreachable")
)

// replyErrors maps the start of an error reply to its sentinel.
var replyErrors = []struct {
	prefix string
	err    error
}{
	{"No such server.", ErrNoSuchServer},
	{"No such backend.", ErrNoSuchBackend},
	{"No such proxy.", ErrNoSuchBackend},
	{"Can't find backend.", ErrNoSuchBackend},
	{"Already exists a server with the same name", ErrExists},
	{"Server still has connections attached", ErrConnectionsAttached},
	{"Only servers in maintenance mode can be deleted.", ErrNotInMaint},
}

// Client talks to one HAProxy runtime API (the "stats socket ... level
// admin"), one connection per command: HAProxy answers and closes, so there
// is no session state to lose on a reload. A Client is safe for concurrent
// use.
type Client struct {
	network, address string
	timeout          time.Duration
	// trace, when set, sees every command sent (tests).
	trace func(cmd string)
}

// NewClient returns a client for "unix:/path" or "tcp:host:port". timeout
// bounds each command (0: 5s).
func NewClient(address string, timeout time.Duration) (*Client, error) {
	network, addr, err := parseAddress(address)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = DefaultCommandTimeout
	}
	return &Client{network: network, address: addr, timeout: timeout}, nil
}

// parseAddress splits "unix:/path" or "tcp:host:port".
func parseAddress(a string) (network, addr string, err error) {
	switch {
	case strings.HasPrefix(a, "unix:") && len(a) > len("unix:"):
		return "unix", a[len("unix:"):], nil
	case strings.HasPrefix(a, "tcp:"):
		if _, _, err := net.SplitHostPort(a[len("tcp:"):]); err != nil {
			return "", "", fmt.Errorf("address %q: %w", a, err)
		}
		return "tcp", a[len("tcp:"):], nil
	}
	return "", "", fmt.Errorf("address %q: want unix:/path or tcp:host:port", a)
}

// String returns the address in configuration form.
func (c *Client) String() string { return c.network + ":" + c.address }

// Do sends one command and returns HAProxy's reply with surrounding white
// space trimmed. It never interprets the reply; see Exec.
func (c *Client) Do(ctx context.Context, cmd string) (string, error) {
	if strings.ContainsAny(cmd, "\n;") {
		return "", fmt.Errorf("command %q: newline or ';' not allowed", cmd)
	}
	if c.trace != nil {
		c.trace(cmd)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.network, c.address)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", fmt.Errorf("%w: send %q: %v", ErrUnreachable, firstWords(cmd), err)
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return "", fmt.Errorf("%w: read reply to %q: %v", ErrUnreachable, firstWords(cmd), err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Exec sends a command and turns its reply into an error: a reply equal to
// one of ok (or empty when ok is empty) is success, a known error reply
// wraps its sentinel, anything else wraps ErrRejected.
func (c *Client) Exec(ctx context.Context, cmd string, ok ...string) error {
	r, err := c.Do(ctx, cmd)
	if err != nil {
		return err
	}
	return replyError(cmd, r, ok...)
}

func replyError(cmd, reply string, ok ...string) error {
	if reply == "" && len(ok) == 0 {
		return nil
	}
	for _, o := range ok {
		if reply == o {
			return nil
		}
	}
	for _, e := range replyErrors {
		if strings.HasPrefix(reply, e.prefix) {
			return fmt.Errorf("%s: %w", firstWords(cmd), e.err)
		}
	}
	return fmt.Errorf("%s: %w: %q", firstWords(cmd), ErrRejected, firstLine(reply))
}

// firstWords names a command in errors: its first three words, then the
// server ("add server web/one-42").
func firstWords(cmd string) string {
	f := strings.Fields(cmd)
	if len(f) > 3 {
		f = f[:3]
	}
	return strings.Join(f, " ")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	if len(l) > 200 {
		l = l[:200]
	}
	return l
}
