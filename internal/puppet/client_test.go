package puppet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// The status classification: retrying helps with an overloaded or
// restarting server, never with a request or an identity it refuses.
func TestStatusErrorClassification(t *testing.T) {
	tests := []struct {
		name      string
		server    string
		code      int
		permanent bool
		hint      string
	}{
		{"ca 503", "ca", 503, false, ""},
		{"ca 500", "ca", 500, false, ""},
		{"puppetdb 502", "puppetdb", 502, false, ""},
		{"ca 408", "ca", 408, false, ""},
		{"ca 429", "ca", 429, false, ""},
		{"ca 400", "ca", 400, true, ""},
		{"ca 403", "ca", 403, true, "auth.conf"},
		{"ca 401", "ca", 401, true, "auth.conf"},
		{"puppetdb 403", "puppetdb", 403, true, "certificate-allowlist"},
		{"puppetdb 400", "puppetdb", 400, true, ""},
		{"ca 409", "ca", 409, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &client{name: tc.server, base: &url.URL{Scheme: "https", Host: "127.0.0.1:8140"}}
			err := c.statusError("op", tc.code, []byte("Forbidden request: /puppet-ca/v1/x\nsecond line"))
			if err == nil || worker.IsPermanent(err) != tc.permanent {
				t.Fatalf("%v: permanent=%v, want %v", err, worker.IsPermanent(err), tc.permanent)
			}
			msg := err.Error()
			if !strings.Contains(msg, fmt.Sprintf("answered %d", tc.code)) || !strings.Contains(msg, tc.hint) || strings.Contains(msg, "second line") {
				t.Fatalf("error %q: want the status, hint %q and one line of the body", msg, tc.hint)
			}
		})
	}
}

// The transport classification, with the errors crypto/tls and net return.
func TestTransportErrorClassification(t *testing.T) {
	remoteAlert := func(a tls.AlertError) error {
		// What crypto/tls returns for an alert the server sent: the alert
		// inside a net.OpError, with the same text as a.
		return &net.OpError{Op: "remote error", Err: errors.New(a.Error())}
	}
	tests := []struct {
		name      string
		err       error
		permanent bool
		want      string
	}{
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, false, "unreachable"},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, false, "unreachable"},
		{"timeout", context.DeadlineExceeded, false, "unreachable"},
		{"eof", io.ErrUnexpectedEOF, false, "unreachable"},
		{"handshake failure alert", remoteAlert(40), false, "unreachable"},
		{"server cert of an unknown CA", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, true, "server certificate not trusted"},
		{"unknown authority", x509.UnknownAuthorityError{}, true, "server certificate not trusted"},
		{"server cert expired", x509.CertificateInvalidError{Reason: x509.Expired}, true, "server certificate not trusted"},
		{"wrong host name", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "10.0.0.1"}, true, "server certificate not trusted"},
		{"client cert refused: bad certificate", remoteAlert(42), true, "client certificate refused"},
		{"client cert refused: revoked", remoteAlert(44), true, "client certificate refused"},
		{"client cert refused: unknown ca", remoteAlert(48), true, "client certificate refused"},
		{"client cert required", remoteAlert(116), true, "client certificate refused"},
		{"client cert refused, local alert", tls.AlertError(42), true, "client certificate refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &client{name: "ca", base: &url.URL{Scheme: "https", Host: "127.0.0.1:8140"}}
			in := &url.Error{Op: "Get", URL: "https://127.0.0.1:8140/puppet-ca/v1/certificate_status/x", Err: tc.err}
			err := c.transportError(in)
			if worker.IsPermanent(err) != tc.permanent || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v: permanent=%v, want %v and %q", err, worker.IsPermanent(err), tc.permanent, tc.want)
			}
			if strings.Contains(err.Error(), "/puppet-ca/") {
				t.Fatalf("error carries the URL: %v", err)
			}
		})
	}
}

// otherCA writes a CA unrelated to the Puppet CA and a client certificate
// "vmglue-worker" it signed; it returns the three PEM files.
func otherCA(t *testing.T) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Other CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "vmglue-worker"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", leafDER), write("key.pem", "PRIVATE KEY", keyDER)
}

// Against the real Puppet Server: a tls.ca_file of another CA, a client
// certificate of another CA and a revoked client certificate are
// configuration errors, permanent at once (dead letter) rather than
// retried for ever.
func TestApplyTLSMisconfigurationIsPermanent(t *testing.T) {
	s := testenv.Puppet(t)
	a := testenv.NewPuppetAdmin(t, s)
	caFile, certFile, keyFile := otherCA(t)
	host := "ca 127.0.0.1:" + s.ServerPort
	check := func(t *testing.T, cfg Config) (worker.Objects, error) {
		t.Helper()
		cfg.OnRunning.CheckAccess = true
		return converge(t, newTarget(t, cfg), fakeVM(uniq("tls"), eventbus.KindRunning, nil), nil)
	}
	t.Run("ca_file of another CA", func(t *testing.T) {
		cfg := testConfig(s)
		cfg.TLS.CAFile = caFile
		out, err := check(t, cfg)
		if want := host + ": server certificate not trusted"; !worker.IsPermanent(err) || !strings.Contains(err.Error(), want) || len(out) != 0 {
			t.Fatalf("got %v %v; want a permanent error with %q and nothing recorded", out, err, want)
		}
	})
	// Puppet Server (client-auth "want") takes a certificate it cannot
	// verify as no certificate: auth.conf refuses the anonymous request.
	t.Run("client certificate of another CA", func(t *testing.T) {
		cfg := testConfig(s)
		cfg.TLS.CertFile, cfg.TLS.KeyFile = certFile, keyFile
		out, err := check(t, cfg)
		if want := "answered 403"; !worker.IsPermanent(err) || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), "tls.cert_file") || len(out) != 0 {
			t.Fatalf("got %v %v; want a permanent error with %q, naming tls.cert_file", out, err, want)
		}
	})
	// A revoked certificate is refused in the TLS handshake, once Puppet
	// Server has reloaded its CRL (about 0.4 s after the revocation).
	t.Run("revoked client certificate", func(t *testing.T) {
		name := uniq("revoked-worker")
		cfg := testConfig(s)
		cfg.TLS.CertFile, cfg.TLS.KeyFile = a.ClientCert(name)
		a.Revoke(name)
		var err error
		testenv.WaitFor(t, 10*time.Second, "the revocation enforced", func() bool {
			_, err = check(t, cfg)
			return err == nil || !strings.Contains(err.Error(), "answered 403")
		})
		if want := host + ": client certificate refused"; !worker.IsPermanent(err) || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v; want a permanent error with %q", err, want)
		}
	})
}
