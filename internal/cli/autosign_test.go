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

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/cli"
	"github.com/vmglue/vmglue/internal/ops/opstest"
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
	for _, v := range []eventbus.VM{opstest.VM("7", eventbus.KindRunning), opstest.VM("8", eventbus.KindStopped)} {
		if _, err := snaps.Merge(ctx, &v); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	withPuppet := filepath.Join(dir, "puppet.yaml")
	without := filepath.Join(dir, "none.yaml")
	for path, text := range map[string]string{withPuppet: puppetConfig, without: "log:\n  level: info\n"} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
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
			runAutosign(t, append([]string{"autosign", "-c", tt.config, "-s", tt.url}, tt.args...), tt.csr, tt.code, tt.stderr)
		})
	}
}

// runAutosign runs `vmglue <args>` with csr on stdin and checks its exit
// code, its one stderr line and that it answered within the deadline
// (plus a margin for a loaded machine). It returns how long it took.
func runAutosign(t *testing.T, args []string, csr []byte, code int, stderr string) time.Duration {
	t.Helper()
	var out, errb bytes.Buffer
	start := time.Now()
	got := cli.ExecuteIO(context.Background(), args, bytes.NewReader(csr), &out, &errb)
	took := time.Since(start)
	if got != code {
		t.Fatalf("exit %d, want %d; stderr %q", got, code, errb.String())
	}
	if msg := errb.String(); strings.Count(msg, "\n") != 1 || !strings.Contains(msg, stderr) {
		t.Fatalf("stderr %q: want one line with %q", msg, stderr)
	}
	if out.Len() != 0 {
		t.Fatalf("stdout %q, want nothing", out.String())
	}
	if took > cli.DefaultAutosignTimeout+time.Second { // bounded, with room for a loaded machine
		t.Fatalf("took %s: autosign must decide within its %s deadline", took, cli.DefaultAutosignTimeout)
	}
	return took
}

// NATS answers but the state does not: JetStream is off, stuck (the
// JetStream API takes requests and never replies), or the bucket is
// missing. Each is refused (exit 2, never a signature) within the one
// deadline, naming the cause.
func TestAutosignJetStreamUnavailable(t *testing.T) {
	plain := func(t *testing.T) string { return natstest.StartRaw(t, server.Options{}) }
	tests := []struct {
		name   string
		nats   func(t *testing.T) string
		args   []string
		stderr string
	}{
		{"no jetstream", plain, nil, "open bucket VMGLUE_VMS: JetStream is not enabled on this NATS"},
		{"jetstream stuck", func(t *testing.T) string {
			url := plain(t)
			nc, err := nats.Connect(url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			// Takes every JetStream API request, answers none.
			if _, err := nc.Subscribe("$JS.API.>", func(*nats.Msg) {}); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			return url
		}, nil, "open bucket VMGLUE_VMS: no answer within --timeout 800ms"},
		{"jetstream stuck, shorter timeout", nil, []string{"--timeout", "300ms"}, "open bucket VMGLUE_VMS: no answer within --timeout 300ms"},
		{"bucket missing", func(t *testing.T) string {
			s := natstest.Start(t)
			_, js := natstest.Connect(t, s.URL)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := js.DeleteKeyValue(ctx, eventbus.BucketVMs); err != nil {
				t.Fatal(err)
			}
			return s.URL
		}, nil, "open bucket VMGLUE_VMS: not found on this NATS"},
	}
	tests[2].nats = tests[1].nats
	cfg := filepath.Join(t.TempDir(), "puppet.yaml")
	if err := os.WriteFile(cfg, []byte(puppetConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"autosign", "-c", cfg, "-s", tt.nats(t)}, tt.args...)
			took := runAutosign(t, append(args, "web7.cloud.test"), csrPEM(t, "web7.cloud.test"), 2, `refused "web7.cloud.test": `+tt.stderr)
			t.Logf("refused in %s", took.Round(time.Millisecond))
		})
	}
}

// What Puppet Server's environment and the config decide: VMGLUE_NATS_URL
// overrides nats.url of the config; a VM that never booted (PENDING) is
// refused; require_challenge without a readable challenge key refuses
// every CSR with the reason (exit 2).
func TestAutosignEnvironmentAndPolicy(t *testing.T) {
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snaps, err := worker.OpenSnapshots(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []eventbus.VM{opstest.VM("11", eventbus.KindRunning), opstest.VM("12", eventbus.KindCreated)} {
		if _, err := snaps.Merge(ctx, &v); err != nil {
			t.Fatal(err)
		}
	}
	down := natstest.Start(t)
	down.Stop()
	dir := t.TempDir()
	elsewhere := filepath.Join(dir, "elsewhere.yaml")
	challenge := filepath.Join(dir, "challenge.yaml")
	for path, text := range map[string]string{
		elsewhere: "nats:\n  url: " + down.URL + "\n" + puppetConfig,
		challenge: puppetConfig + "    autosign:\n      require_challenge: true\n      challenge_key_file: " + dir + "/missing.key\n",
	} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("VMGLUE_NATS_URL", s.URL)
	tests := []struct {
		name, config, certname string
		code                   int
		stderr                 string
	}{
		{"VMGLUE_NATS_URL overrides nats.url", elsewhere, "web11.cloud.test", 0, "signed web11.cloud.test: vm one.11 is running"},
		{"never booted vm refuses", elsewhere, "web12.cloud.test", 1, "vm one.12 is created (autosign signs only a VM that is booting or booted)"},
		{"require_challenge without a key", challenge, "web11.cloud.test", 2, "challenge key: no challenge key: open " + dir + "/missing.key: no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runAutosign(t, []string{"autosign", "-c", tt.config, tt.certname}, csrPEM(t, tt.certname), tt.code, tt.stderr)
		})
	}
}
