package puppet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
)

// goCSR is a CSR for certname made by Go, changed by edit before signing.
func goCSR(t testing.TB, certname string, edit func(*x509.CertificateRequest)) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: certname}}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// utf8Ext is a Puppet extension request: a UTF8String value.
func utf8Ext(t *testing.T, oid asn1.ObjectIdentifier, v string) pkix.Extension {
	t.Helper()
	b, err := asn1.MarshalWithParams(v, "utf8")
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oid, Value: b}
}

// sanExt is a raw subjectAltName extension of one GeneralName.
func sanExt(t *testing.T, tag int, value []byte) pkix.Extension {
	t.Helper()
	b, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: tag, Bytes: value}})
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidSAN, Value: b}
}

// A live VM whose CSR asks for more than its own node certificate is
// refused, each time with its own reason: other alternative names (a VM
// could get DNS:puppet and pose as the server) and Puppet authorization
// extensions (pp_cli_auth opens the CA admin API).
func TestAutosignRefusesOverreach(t *testing.T) {
	const certname = "web1.cloud.test"
	lookup := mapLookup{certname: fakeVM("web1", eventbus.KindRunning, nil)}
	ppAuth := func(n int) asn1.ObjectIdentifier { return append(append(asn1.ObjectIdentifier{}, oidPuppetAuth...), n) }
	tests := []struct {
		name   string
		edit   func(*x509.CertificateRequest)
		reason string // "" signs
	}{
		{"no alternative name", nil, ""},
		{"its own certname as DNS name", func(r *x509.CertificateRequest) { r.DNSNames = []string{certname} }, ""},
		{"its own certname, other case", func(r *x509.CertificateRequest) { r.DNSNames = []string{"WEB1.cloud.test"} }, ""},
		{"registered extensions", func(r *x509.CertificateRequest) {
			r.ExtraExtensions = []pkix.Extension{utf8Ext(t, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 34380, 1, 1, 2}, "i-0042")}
		}, ""},
		{"the server's name", func(r *x509.CertificateRequest) { r.DNSNames = []string{certname, "puppet"} },
			"subject alternative name DNS:puppet: a VM may only have DNS:web1.cloud.test"},
		{"a wildcard", func(r *x509.CertificateRequest) { r.DNSNames = []string{"*.cloud.test"} },
			"subject alternative name DNS:*.cloud.test"},
		{"an IP address", func(r *x509.CertificateRequest) { r.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)} },
			"subject alternative name IP:127.0.0.1"},
		{"an email address", func(r *x509.CertificateRequest) { r.EmailAddresses = []string{"root@cloud.test"} },
			"subject alternative name email:root@cloud.test"},
		{"a URI", func(r *x509.CertificateRequest) {
			r.URIs = []*url.URL{{Scheme: "spiffe", Host: "cloud.test", Path: "/ca"}}
		},
			"subject alternative name URI:spiffe://cloud.test/ca"},
		{"a registeredID name", func(r *x509.CertificateRequest) {
			r.ExtraExtensions = []pkix.Extension{sanExt(t, 8, []byte{0x2a, 0x03})}
		},
			"subject alternative name of type [8]"},
		{"pp_cli_auth", func(r *x509.CertificateRequest) { r.ExtraExtensions = []pkix.Extension{utf8Ext(t, ppAuth(39), "true")} },
			"authorization extension pp_cli_auth (1.3.6.1.4.1.34380.1.3.39)"},
		{"pp_auth_role", func(r *x509.CertificateRequest) {
			r.ExtraExtensions = []pkix.Extension{utf8Ext(t, ppAuth(13), "admin")}
		},
			"authorization extension pp_auth_role"},
		{"an unnamed authorization extension", func(r *x509.CertificateRequest) {
			r.ExtraExtensions = []pkix.Extension{utf8Ext(t, append(ppAuth(99), 1), "x")}
		}, "authorization extension 1.3.6.1.4.1.34380.1.3.99.1,"},
		{"a Microsoft extension request", func(r *x509.CertificateRequest) {
			//lint:ignore SA1019 Attributes is the only way to make x509 write an attribute other than extReq.
			r.Attributes = []pkix.AttributeTypeAndValueSET{{Type: oidMSExtReq,
				Value: [][]pkix.AttributeTypeAndValue{{{Type: oidSAN, Value: "puppet"}}}}}
		}, "Microsoft extension request (msExtReq)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Autosign(context.Background(), certname, goCSR(t, certname, tc.edit), policy(lookup, AutosignConfig{}))
			if err != nil {
				t.Fatal(err)
			}
			if tc.reason == "" {
				if !d.Sign {
					t.Fatalf("refused: %s", d.Reason)
				}
				return
			}
			if d.Sign || !strings.HasPrefix(d.Reason, "refused "+certname+": ") || !strings.Contains(d.Reason, tc.reason) || strings.Contains(d.Reason, "\n") {
				t.Fatalf("got %+v; want one refusal line with %q", d, tc.reason)
			}
		})
	}
}

// FuzzAutosignCSR feeds arbitrary CSR DER to the policy: it must not
// panic, must give one reason line, and may sign only a CSR that asks
// for nothing but the certname.
func FuzzAutosignCSR(f *testing.F) {
	const certname = "web1.cloud.test"
	for _, edit := range []func(*x509.CertificateRequest){nil,
		func(r *x509.CertificateRequest) { r.DNSNames = []string{certname, "puppet"} },
		func(r *x509.CertificateRequest) { r.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)} },
	} {
		block, _ := pem.Decode(goCSR(f, certname, edit))
		f.Add(block.Bytes)
	}
	lookup := mapLookup{certname: fakeVM("web1", eventbus.KindRunning, nil)}
	f.Fuzz(func(t *testing.T, der []byte) {
		in := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
		d, err := Autosign(context.Background(), certname, in, policy(lookup, AutosignConfig{}))
		if err != nil || d.Reason == "" || strings.Contains(d.Reason, "\n") {
			t.Fatalf("decision %+v, %v: want one reason line", d, err)
		}
		if !d.Sign {
			return
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil || csr.CheckSignature() != nil || csr.Subject.CommonName != certname || overreach(csr, certname) != "" ||
			len(csr.IPAddresses)+len(csr.EmailAddresses)+len(csr.URIs) > 0 {
			t.Fatalf("signed a CSR it must refuse: %+v", csr)
		}
		for _, n := range csr.DNSNames {
			if !strings.EqualFold(n, certname) {
				t.Fatalf("signed DNS:%s", n)
			}
		}
	})
}
