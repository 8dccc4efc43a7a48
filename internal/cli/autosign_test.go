package cli_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/cli"
	"github.com/vmglue/vmglue/internal/worker"
)

// puppetConfig is a config file with a workers.puppet section. Autosign
// reads only the certname template and the policy; the URLs and files are
// never contacted.
const puppetConfig = `workers:
  puppet:
    ca_url: https://puppet.invalid:8140
    puppetdb_url: https://puppetdb.invalid:8081
    domain: cloud.test
    tls: {ca_file: /nonexistent/ca.pem, cert_file: /nonexistent/cert.pem, key_file: /nonexistent/key.pem}
`

// csrPEM is a CSR for certname, made like an agent makes it.
func csrPEM(t *testing.T, certname string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: certname}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestAutosign(t *testing.T) {
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snaps, err := worker.OpenSnapshots(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []eventbus.VM{vm("7", eventbus.KindRunning), vm("8", eventbus.KindStopped)} {
		if _, err := snaps.Merge(ctx, &v); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	withPuppet := filepath.Join(dir, "puppet.yaml")
	without := filepath.Join(dir, "none.yaml")
	os.WriteFile(withPuppet, []byte(puppetConfig), 0o600)
	os.WriteFile(without, []byte("log:\n  level: info\n"), 0o600)
	down := natstest.Start(t)
	down.Stop()

	tests := []struct {
		name   string
		args   []string
		csr    []byte
		url    string
		config string
		code   int
		stderr string
	}{
		{"running vm signs", []string{"web7.cloud.test"}, csrPEM(t, "web7.cloud.test"), s.URL, withPuppet, 0, "signed web7.cloud.test: vm one.7 is running"},
		{"unknown certname refuses", []string{"web9.cloud.test"}, csrPEM(t, "web9.cloud.test"), s.URL, withPuppet, 1, "refused web9.cloud.test: no VM known with this certname"},
		{"stopped vm refuses", []string{"web8.cloud.test"}, csrPEM(t, "web8.cloud.test"), s.URL, withPuppet, 1, "vm one.8 is stopped"},
		{"CN mismatch refuses", []string{"web7.cloud.test"}, csrPEM(t, "evil.cloud.test"), s.URL, withPuppet, 1, "does not match the certname"},
		{"no CSR refuses", []string{"web7.cloud.test"}, []byte("hello"), s.URL, withPuppet, 1, "no PEM certificate request"},
		{"nats down is an error", []string{"web7.cloud.test"}, csrPEM(t, "web7.cloud.test"), down.URL, withPuppet, 2, `refused "web7.cloud.test": connect to nats`},
		{"no puppet section is an error", []string{"web7.cloud.test"}, csrPEM(t, "web7.cloud.test"), s.URL, without, 2, "workers.puppet is not configured"},
		{"no certname is an error", nil, nil, s.URL, withPuppet, 2, "usage: vmglue autosign"},
		{"two certnames is an error", []string{"a", "b"}, nil, s.URL, withPuppet, 2, "usage: vmglue autosign"},
		{"unknown flag is an error", []string{"--bogus", "web7.cloud.test"}, nil, s.URL, withPuppet, 2, "unknown flag: --bogus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			start := time.Now()
			args := append([]string{"autosign", "-c", tt.config, "-s", tt.url}, tt.args...)
			code := cli.ExecuteIO(context.Background(), args, bytes.NewReader(tt.csr), &out, &errb)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, errb.String())
			}
			if msg := errb.String(); strings.Count(msg, "\n") != 1 || !strings.Contains(msg, tt.stderr) {
				t.Fatalf("stderr %q: want one line with %q", msg, tt.stderr)
			}
			if out.Len() != 0 {
				t.Fatalf("stdout %q, want nothing", out.String())
			}
			if d := time.Since(start); d > cli.AutosignConnectTimeout+time.Second {
				t.Fatalf("took %s: autosign must answer fast", d)
			}
		})
	}
}
