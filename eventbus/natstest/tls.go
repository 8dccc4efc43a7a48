package natstest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
)

// TLSServer is a running provisioned nats-server that demands TLS of every
// client, as `tls { cert_file, key_file }` in its configuration does.
type TLSServer struct {
	// URL is its client URL, tls://127.0.0.1:<port>.
	URL string
	// CAFile is the PEM of the test CA that signed its certificate (for
	// 127.0.0.1 and localhost): what nats.ca_file and VMGLUE_NATS_CA take.
	CAFile string
}

// StartTLS starts a provisioned server with TLS on a random loopback port,
// its certificate from a CA made for the test (crypto/x509, no files but
// the test's temporary ones). It stops when the test ends.
func StartTLS(t testing.TB) *TLSServer {
	t.Helper()
	ca := testenv.NewTestCA(t)
	cert, key := ca.Issue(t, "nats", true)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatalf("nats tls config: %v", err)
	}
	// With TLS on, the server's client URL is tls://127.0.0.1:<port>.
	s := &TLSServer{URL: StartRaw(t, server.Options{JetStream: true, StoreDir: t.TempDir(), TLS: true, TLSConfig: tc, TLSTimeout: 5}), CAFile: ca.CAFile}
	if !strings.HasPrefix(s.URL, "tls://") {
		t.Fatalf("nats with TLS: client URL %s, want tls://", s.URL)
	}
	_, js := Connect(t, s.URL, nats.RootCAs(s.CAFile))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := eventbus.Provision(ctx, js, eventbus.ProvisionOptions{}); err != nil {
		t.Fatalf("provision: %v", err)
	}
	return s
}
