package hookcmd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestShortReason: each way NATS can refuse an event gets its own few
// words (a TLS failure names what to fix); a stream that does not answer is not called missing, since a
// cluster electing a leader answers the same way.
func TestShortReason(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name   string
		parent context.Context
		err    error
		want   string
	}{
		{"SIGTERM", cancelled, errors.New("x"), "terminated before the ack"},
		{"timeout", context.Background(), fmt.Errorf("publish: %w", context.DeadlineExceeded), "nats timeout after 3s"},
		{"no server", context.Background(), nats.ErrNoServers, "nats unreachable"},
		{"no stream", context.Background(), jetstream.ErrStreamNotFound, "stream VMGLUE_EVENTS not provisioned"},
		{"no answer", context.Background(), jetstream.ErrNoStreamResponse,
			"stream VMGLUE_EVENTS did not answer (not provisioned, or no leader while a NATS node changes)"},
		{"no responders", context.Background(), fmt.Errorf("publish: %w", nats.ErrNoResponders),
			"stream VMGLUE_EVENTS did not answer (not provisioned, or no leader while a NATS node changes)"},
		{"authorization", context.Background(), nats.ErrAuthorization, "nats authorization failed"},
		{"unknown CA", context.Background(), fmt.Errorf("connect: %w: %w", nats.ErrTLS, &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}),
			"nats TLS: certificate signed by unknown authority: VMGLUE_NATS_CA must name the CA that signed the server's certificate"},
		{"other host's certificate", context.Background(), fmt.Errorf("connect: %w: %w", nats.ErrTLS, &tls.CertificateVerificationError{
			Err: x509.HostnameError{Certificate: &x509.Certificate{DNSNames: []string{"nats-1.example.net"}}, Host: "nats-2.example.net"}}),
			"nats TLS: certificate is valid for nats-1.example.net, not nats-2.example.net"},
		{"no TLS on the server", context.Background(), fmt.Errorf("connect: %w", nats.ErrSecureConnWanted),
			"nats TLS: the server offers none, and VMGLUE_NATS_CA asks for it"},
		{"other", context.Background(), errors.New("boom"), "boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := shortReason(tc.parent, tc.err, 3*time.Second); got != tc.want {
				t.Errorf("shortReason = %q, want %q", got, tc.want)
			}
		})
	}
}
