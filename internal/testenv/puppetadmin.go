package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PuppetAdmin arranges and inspects the test Puppet stack independently of
// the code under test: it plays a VM's agent (CSR, facts) and checks the
// CA and PuppetDB afterwards. It talks HTTPS with the worker's certificate
// (allowed on the CA admin endpoints), HTTPS without a client certificate
// (as an agent before it has one) and PuppetDB's plain HTTP port.
type PuppetAdmin struct {
	t     testing.TB
	s     *PuppetStack
	admin *http.Client
	plain *http.Client
}

// NewPuppetAdmin returns an admin client for the stack s.
func NewPuppetAdmin(t testing.TB, s *PuppetStack) *PuppetAdmin {
	t.Helper()
	caPEM, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatalf("puppet admin: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("puppet admin: no certificate in %s", s.CAFile)
	}
	cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		t.Fatalf("puppet admin: %v", err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}
	ptr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	t.Cleanup(ptr.CloseIdleConnections)
	return &PuppetAdmin{t: t, s: s, admin: &http.Client{Transport: tr, Timeout: 30 * time.Second},
		plain: &http.Client{Transport: ptr, Timeout: 30 * time.Second}}
}

func (a *PuppetAdmin) call(c *http.Client, method, u, ctype string, body []byte) (int, []byte) {
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

const caStatus = "/puppet-ca/v1/certificate_status/"

// SubmitCSR does what an agent does for certname before it has a
// certificate: it generates a key and sends a CSR for certname to the CA,
// where it stays pending unless the autosign policy signs it.
func (a *PuppetAdmin) SubmitCSR(certname string) {
	a.t.Helper()
	a.submitCSR(certname)
}

// submitCSR sends a CSR for certname and returns its key.
func (a *PuppetAdmin) submitCSR(certname string) *rsa.PrivateKey {
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
	return key
}

// SignedCert does what an agent and a signing CA do for certname: it sends
// a CSR, signs it through the CA API and returns the certificate's serial.
func (a *PuppetAdmin) SignedCert(certname string) *big.Int {
	a.t.Helper()
	a.SubmitCSR(certname)
	a.setState(certname, "signed")
	return a.CertSerial(certname)
}

// ClientCert is SignedCert keeping the key: it returns PEM files of the
// certificate and key of certname, e.g. to present as a client.
func (a *PuppetAdmin) ClientCert(certname string) (certFile, keyFile string) {
	a.t.Helper()
	key := a.submitCSR(certname)
	a.setState(certname, "signed")
	code, cert := a.call(a.plain, http.MethodGet, a.s.CAURL+"/puppet-ca/v1/certificate/"+certname, "", nil)
	if code != http.StatusOK {
		a.t.Fatalf("get certificate %s: %d %s", certname, code, cert)
	}
	dir := a.t.TempDir()
	certFile, keyFile = filepath.Join(dir, certname+".crt"), filepath.Join(dir, certname+".key")
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(certFile, cert, 0o600); err != nil {
		a.t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		a.t.Fatal(err)
	}
	return certFile, keyFile
}

// Revoke revokes the signed certificate of certname (the CA's CRL lists it;
// Puppet Server enforces it about 0.4 s later).
func (a *PuppetAdmin) Revoke(certname string) {
	a.t.Helper()
	a.setState(certname, "revoked")
}

// setState sets the CA's state of certname through the admin API.
func (a *PuppetAdmin) setState(certname, state string) {
	a.t.Helper()
	code, body := a.call(a.admin, http.MethodPut, a.s.CAURL+caStatus+certname, "application/json", []byte(`{"desired_state":"`+state+`"}`))
	if code != http.StatusNoContent {
		a.t.Fatalf("set %s %s: %d %s", certname, state, code, body)
	}
}

// CertSerial returns the serial of the signed certificate of certname.
func (a *PuppetAdmin) CertSerial(certname string) *big.Int {
	a.t.Helper()
	return a.cert(certname).SerialNumber
}

// CertPublicKey returns the DER SubjectPublicKeyInfo of the signed
// certificate of certname.
func (a *PuppetAdmin) CertPublicKey(certname string) []byte {
	a.t.Helper()
	return a.cert(certname).RawSubjectPublicKeyInfo
}

// cert returns the signed certificate of certname.
func (a *PuppetAdmin) cert(certname string) *x509.Certificate {
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
	return c
}

// CertState is the CA's state of certname ("requested", "signed",
// "revoked"), "" when the CA does not know it.
//
// A status read racing a clean of the same certname can get a 500 from
// Puppet Server 7 (FileNotFoundException of the CSR file): such an answer
// is asked again, for up to 10 seconds.
func (a *PuppetAdmin) CertState(certname string) string {
	a.t.Helper()
	var (
		code int
		body []byte
	)
	err := Poll(context.Background(), 10*time.Second, func() bool {
		code, body = a.call(a.admin, http.MethodGet, a.s.CAURL+caStatus+certname, "", nil)
		return code < 500
	})
	if code == http.StatusNotFound {
		return ""
	}
	var st struct {
		State string `json:"state"`
	}
	if err != nil || code != http.StatusOK || json.Unmarshal(body, &st) != nil {
		a.t.Fatalf("certificate status %s: %d %s", certname, code, body)
	}
	return st.State
}

// Revoked reports whether the CA's CRL lists serial.
func (a *PuppetAdmin) Revoked(serial *big.Int) bool {
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

// ReplaceFacts stores facts for certname in PuppetDB, as an agent run does
// (which also activates the node), and waits until PuppetDB processed them.
func (a *PuppetAdmin) ReplaceFacts(certname string) {
	a.t.Helper()
	body, _ := json.Marshal(map[string]any{"certname": certname, "environment": "production",
		"producer_timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), "producer": "vmglue-test",
		"values": map[string]any{"cloud_instance_id": certname}})
	q := "?command=replace_facts&version=5&secondsToWaitForCompletion=20&certname=" + url.QueryEscape(certname)
	code, resp := a.call(a.plain, http.MethodPost, a.s.PDBHTTPURL+"/pdb/cmd/v1"+q, "application/json", body)
	var r struct {
		Processed bool `json:"processed"`
	}
	if code != http.StatusOK || json.Unmarshal(resp, &r) != nil || !r.Processed {
		a.t.Fatalf("replace facts %s: %d %s", certname, code, resp)
	}
}

// Node returns whether PuppetDB knows certname and whether it is active
// (not deactivated, not expired).
func (a *PuppetAdmin) Node(certname string) (known, active bool) {
	a.t.Helper()
	n, known := a.node(certname)
	return known, known && n.Deactivated == nil && n.Expired == nil
}

// NodeDeactivated returns PuppetDB's "deactivated" of certname: nil while
// the node is active. PuppetDB must know certname.
func (a *PuppetAdmin) NodeDeactivated(certname string) (deactivated any) {
	a.t.Helper()
	n, known := a.node(certname)
	if !known {
		a.t.Fatalf("query node %s: unknown to puppetdb", certname)
	}
	return n.Deactivated
}

type puppetNode struct {
	Certname    string `json:"certname"`
	Deactivated any    `json:"deactivated"`
	Expired     any    `json:"expired"`
}

// node is PuppetDB's record of certname, known false when it has none.
func (a *PuppetAdmin) node(certname string) (n puppetNode, known bool) {
	a.t.Helper()
	code, body := a.call(a.plain, http.MethodGet, a.s.PDBHTTPURL+"/pdb/query/v4/nodes/"+url.PathEscape(certname), "", nil)
	if code == http.StatusNotFound {
		return n, false
	}
	if code != http.StatusOK || json.Unmarshal(body, &n) != nil || n.Certname != certname {
		a.t.Fatalf("query node %s: %d %s", certname, code, body)
	}
	return n, true
}
