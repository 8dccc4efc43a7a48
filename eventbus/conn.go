package eventbus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// ConnOptions are the NATS connection settings shared by every vmglue
// program. Secrets are never printed: String masks them.
type ConnOptions struct {
	URL       string `yaml:"url"`
	User      string `yaml:"user"`
	Password  string `yaml:"-"`
	Token     string `yaml:"-"`
	CredsFile string `yaml:"creds_file"`
	CAFile    string `yaml:"ca_file"`
	Name      string `yaml:"-"`
	// InboxPrefix replaces NATS's _INBOX for replies (InboxPrefix(role)):
	// a restricted role may subscribe to its own inbox only.
	InboxPrefix string        `yaml:"-"`
	Timeout     time.Duration `yaml:"timeout"`
}

// DefaultURL is where vmglue serve's embedded server listens by default.
const DefaultURL = "nats://127.0.0.1:4222"

// String describes the connection without secrets.
func (o ConnOptions) String() string { return RedactURL(o.URL) }

// RedactURL replaces the userinfo of every URL in a comma-separated list
// with "***". A part that does not parse is replaced whole when it holds an
// '@', so a malformed URL cannot leak a password either.
func RedactURL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		switch {
		case err != nil && strings.Contains(p, "@"):
			parts[i] = "(unparsable url)"
		case err != nil || u.User == nil:
		default:
			parts[i] = u.Scheme + "://***@" + u.Host + u.EscapedPath()
		}
	}
	return strings.Join(parts, ",")
}

// Connect opens a NATS connection. Reconnects go on forever for long-lived
// programs, which may also start before NATS does; pass reconnect=false for
// one-shot programs like the hook. A TLS failure (the server's certificate
// does not verify with CAFile or the system roots, or CAFile is set and the
// server offers no TLS) is an error at once either way.
func Connect(o ConnOptions, reconnect bool) (*nats.Conn, error) {
	if o.URL == "" {
		o.URL = DefaultURL
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	opts := []nats.Option{nats.Name(o.Name), nats.Timeout(o.Timeout)}
	if reconnect {
		opts = append(opts, nats.MaxReconnects(-1), nats.ReconnectWait(500*time.Millisecond))
	} else {
		opts = append(opts, nats.NoReconnect())
	}
	if o.User != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.CAFile != "" {
		opts = append(opts, nats.RootCAs(o.CAFile))
	}
	if o.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(o.InboxPrefix))
	}
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil && reconnect && !tlsRefused(err) {
		// NATS is not up yet (a long-lived program may start first): go
		// on trying in the background. A certificate that does not verify
		// will not verify later: that one is reported now.
		nc, err = nats.Connect(o.URL, append(opts, nats.RetryOnFailedConnect(true))...)
	}
	if err != nil {
		// nats errors do not carry the URL, but be safe: report the redacted one.
		return nil, fmt.Errorf("connect to nats %s: %w", RedactURL(o.URL), err)
	}
	return nc, nil
}

// tlsRefused reports whether err is a TLS failure that retrying cannot
// mend.
func tlsRefused(err error) bool {
	var cv *tls.CertificateVerificationError
	return errors.As(err, &cv) || errors.Is(err, nats.ErrSecureConnWanted)
}
