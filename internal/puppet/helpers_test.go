package puppet

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
)

func TestMain(m *testing.M) {
	// Puppet Server runs a copy of this binary as its autosign policy.
	if vms := os.Getenv("VMGLUE_AUTOSIGN_HELPER_VMS"); vms != "" {
		os.Exit(autosignHelper(vms))
	}
	code := m.Run()
	testenv.StopPuppet()
	os.Exit(code)
}

// fakeVM is a VM whose default certname is <name>.cloud.test, created now:
// before the certificates the test signs for it.
func fakeVM(name, kind string, attrs map[string]string) *eventbus.VM {
	created := time.Now().UTC()
	return &eventbus.VM{Cloud: "one", CloudType: "opennebula", ID: "id-" + name, Name: name,
		Kind: kind, Attributes: attrs, Times: eventbus.Times{Created: &created}}
}

// uniq returns a fresh VM name: the stack is shared by test runs.
func uniq(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1e10)
}

func testConfig(s *testenv.PuppetStack) Config {
	return Config{CAURL: s.CAURL, PuppetDBURL: s.PuppetDBURL, Domain: "cloud.test",
		TLS: TLSConfig{CAFile: s.CAFile, CertFile: s.CertFile, KeyFile: s.KeyFile}}
}

func newTarget(t *testing.T, cfg Config) *Target {
	t.Helper()
	tg, err := New(cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel))
	if err != nil {
		t.Fatalf("new target: %v", err)
	}
	return tg
}

// closedURL is a real "down" server: a loopback port nobody listens on.
func closedURL(t *testing.T) string {
	return fmt.Sprintf("https://127.0.0.1:%d", testenv.FreePort(t))
}

// admin is the test's own HTTPS client with the worker's certificate, used
// to arrange and to check the CA and PuppetDB independently of the target.
type admin struct {
	t     *testing.T
	s     *testenv.PuppetStack
	http  *http.Client
	plain *http.Client
}

func newAdmin(t *testing.T, s *testenv.PuppetStack) *admin {
	tc, err := newTLSConfig(TLSConfig{CAFile: s.CAFile, CertFile: s.CertFile, KeyFile: s.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: tc}
	// plain: no client certificate, as an agent before it has one.
	ptr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tc.RootCAs}}
	t.Cleanup(tr.CloseIdleConnections)
	t.Cleanup(ptr.CloseIdleConnections)
	return &admin{t: t, s: s, http: &http.Client{Transport: tr, Timeout: 30 * time.Second},
		plain: &http.Client{Transport: ptr, Timeout: 30 * time.Second}}
}

func (a *admin) call(c *http.Client, method, u, ctype string, body []byte) (int, []byte) {
	a.t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// submitCSR generates a key and sends a CSR for certname to the CA.
func (a *admin) submitCSR(certname string) {
	a.t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		a.t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: certname}}, key)
	if err != nil {
		a.t.Fatal(err)
	}
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	code, body := a.call(a.plain, http.MethodPut, a.s.CAURL+"/puppet-ca/v1/certificate_request/"+certname, "text/plain", csr)
	if code != http.StatusOK {
		a.t.Fatalf("submit csr %s: %d %s", certname, code, body)
	}
}

// signedCert submits a CSR for certname, signs it through the CA API and
// returns the certificate's serial.
func (a *admin) signedCert(certname string) *big.Int {
	a.t.Helper()
	a.submitCSR(certname)
	code, body := a.call(a.http, http.MethodPut, a.s.CAURL+caStatus+certname, "application/json", []byte(`{"desired_state":"signed"}`))
	if code != http.StatusNoContent {
		a.t.Fatalf("sign %s: %d %s", certname, code, body)
	}
	return a.certSerial(certname)
}

func (a *admin) certSerial(certname string) *big.Int {
	a.t.Helper()
	code, body := a.call(a.plain, http.MethodGet, a.s.CAURL+"/puppet-ca/v1/certificate/"+certname, "", nil)
	if code != http.StatusOK {
		a.t.Fatalf("get certificate %s: %d %s", certname, code, body)
	}
	block, _ := pem.Decode(body)
	if block == nil {
		a.t.Fatalf("certificate %s: no PEM", certname)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		a.t.Fatal(err)
	}
	return c.SerialNumber
}

// state is the CA's certificate state of certname, "" when unknown.
func (a *admin) state(certname string) string {
	a.t.Helper()
	code, body := a.call(a.http, http.MethodGet, a.s.CAURL+caStatus+certname, "", nil)
	if code == http.StatusNotFound {
		return ""
	}
	var st certStatus
	if code != http.StatusOK || json.Unmarshal(body, &st) != nil {
		a.t.Fatalf("certificate status %s: %d %s", certname, code, body)
	}
	return st.State
}

// revoked reports whether the CA's CRL lists serial.
func (a *admin) revoked(serial *big.Int) bool {
	a.t.Helper()
	code, body := a.call(a.plain, http.MethodGet, a.s.CAURL+"/puppet-ca/v1/certificate_revocation_list/ca", "", nil)
	block, _ := pem.Decode(body)
	if code != http.StatusOK || block == nil {
		a.t.Fatalf("get crl: %d", code)
	}
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		a.t.Fatal(err)
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return true
		}
	}
	return false
}

// replaceFacts stores facts for certname in PuppetDB and waits for it.
func (a *admin) replaceFacts(certname string) {
	a.t.Helper()
	body, _ := json.Marshal(map[string]any{"certname": certname, "environment": "production",
		"producer_timestamp": time.Now().UTC().Format(pdbTimeFormat), "producer": "vmglue-test",
		"values": map[string]any{"cloud_instance_id": certname}})
	q := "?command=replace_facts&version=5&secondsToWaitForCompletion=20&certname=" + url.QueryEscape(certname)
	code, resp := a.call(a.plain, http.MethodPost, a.s.PDBHTTPURL+pdbCmd+q, "application/json", body)
	var r cmdReply
	if code != http.StatusOK || json.Unmarshal(resp, &r) != nil || !r.Processed {
		a.t.Fatalf("replace facts %s: %d %s", certname, code, resp)
	}
}

// node returns PuppetDB's "deactivated" of certname: nil while active.
func (a *admin) node(certname string) (deactivated any) {
	a.t.Helper()
	code, body := a.call(a.plain, http.MethodGet, a.s.PDBHTTPURL+"/pdb/query/v4/nodes/"+certname, "", nil)
	var n struct {
		Certname    string `json:"certname"`
		Deactivated any    `json:"deactivated"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &n) != nil || n.Certname != certname {
		a.t.Fatalf("query node %s: %d %s", certname, code, body)
	}
	return n.Deactivated
}

// bootstrap runs `puppet ssl bootstrap` for certname in a fresh agent
// confdir/ssldir, with challenge (if any) in csr_attributes.yaml. It
// returns whether the agent got its certificate, and the CSR it sent.
func bootstrap(t *testing.T, s *testenv.PuppetStack, certname, challenge string) (bool, []byte) {
	t.Helper()
	dir, err := os.MkdirTemp(s.AgentsDir, certname+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if challenge != "" {
		attrs := fmt.Sprintf("custom_attributes:\n  1.2.840.113549.1.9.7: %q\n", challenge)
		if err := os.WriteFile(filepath.Join(dir, "etc", "csr_attributes.yaml"), []byte(attrs), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"ssl", "bootstrap", "--certname", certname, "--server", "127.0.0.1",
		"--serverport", s.ServerPort, "--ca_port", s.ServerPort, "--confdir", dir + "/etc",
		"--vardir", dir + "/var", "--ssldir", dir + "/ssl", "--logdir", dir + "/log", "--rundir", dir + "/run",
		"--waitforcert", "0", "--http_keepalive_timeout", "0", "--keylength", "2048"}
	start := time.Now()
	out, err := exec.Command("puppet", args...).CombinedOutput()
	signed := err == nil
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("puppet ssl bootstrap: %v", err)
	}
	t.Logf("puppet ssl bootstrap %s: signed=%v in %s", certname, signed, time.Since(start).Round(time.Millisecond))
	csr, err := os.ReadFile(filepath.Join(dir, "ssl", "certificate_requests", certname+".pem"))
	if err != nil && !signed {
		t.Fatalf("agent csr: %v\n%s", err, out)
	}
	return signed, csr
}
