package puppet

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"strings"
)

// OIDs autosign reads in a CSR.
var (
	// oidChallengePassword is PKCS#9 challengePassword.
	oidChallengePassword = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 7}
	// oidMSExtReq is Microsoft's extension request attribute; Puppet reads
	// it when a CSR has no PKCS#9 extReq, Go's parser never does.
	oidMSExtReq = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 14}
	oidSAN      = asn1.ObjectIdentifier{2, 5, 29, 17}
	// oidPuppetAuth is Puppet's arc of authorization extensions
	// (ppAuthCertExt): a certificate carrying one is granted rights by
	// auth.conf rules, e.g. pp_cli_auth on the CA admin endpoints.
	oidPuppetAuth = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 34380, 1, 3}
)

// puppetAuthNames names the authorization extensions Puppet 7 knows.
var puppetAuthNames = map[int]string{1: "pp_authorization", 13: "pp_auth_role", 39: "pp_cli_auth"}

// csrAttribute is one attribute of a CSR's certificationRequestInfo.
type csrAttribute struct {
	Type   asn1.ObjectIdentifier
	Values []asn1.RawValue `asn1:"set"`
}

// csrAttributes returns the raw attributes of csr, which x509 decodes only
// partly (not every DirectoryString, not msExtReq).
func csrAttributes(csr *x509.CertificateRequest) ([]csrAttribute, error) {
	var info struct {
		Raw        asn1.RawContent
		Version    int
		Subject    asn1.RawValue
		PublicKey  asn1.RawValue
		Attributes []asn1.RawValue `asn1:"tag:0"`
	}
	if _, err := asn1.Unmarshal(csr.RawTBSCertificateRequest, &info); err != nil {
		return nil, fmt.Errorf("parse CSR attributes: %w", err)
	}
	out := make([]csrAttribute, 0, len(info.Attributes))
	for _, raw := range info.Attributes {
		var a csrAttribute
		if _, err := asn1.Unmarshal(raw.FullBytes, &a); err != nil {
			return nil, fmt.Errorf("parse CSR attribute: %w", err)
		}
		out = append(out, a)
	}
	return out, nil
}

// errNoChallenge is returned when a CSR carries no challengePassword.
var errNoChallenge = errors.New("CSR has no challengePassword attribute")

// challengePassword extracts the PKCS#9 challengePassword from the CSR's
// raw attributes: SET OF DirectoryString (UTF8String, PrintableString, …).
func challengePassword(csr *x509.CertificateRequest) (string, error) {
	attrs, err := csrAttributes(csr)
	if err != nil {
		return "", err
	}
	for _, attr := range attrs {
		if !attr.Type.Equal(oidChallengePassword) {
			continue
		}
		if len(attr.Values) != 1 {
			return "", errors.New("challengePassword must have exactly one value")
		}
		var s string
		if _, err := asn1.Unmarshal(attr.Values[0].FullBytes, &s); err != nil {
			// asn1 does not decode every DirectoryString choice (BMPString):
			// refuse rather than guess.
			return "", fmt.Errorf("challengePassword of unsupported type: %w", err)
		}
		return s, nil
	}
	return "", errNoChallenge
}

// overreach returns why csr asks for more than a VM's node certificate
// for certname, "" when it does not. A VM may ask for no subject
// alternative name but DNS:<certname> (what `puppet ssl bootstrap
// --dns_alt_names` adds to the names given) and for no Puppet
// authorization extension; a Microsoft extension request, which Go does
// not read but Puppet may, is refused as a whole.
func overreach(csr *x509.CertificateRequest, certname string) string {
	attrs, err := csrAttributes(csr)
	if err != nil {
		return err.Error()
	}
	for _, a := range attrs {
		if a.Type.Equal(oidMSExtReq) {
			return "CSR carries a Microsoft extension request (msExtReq), which is not accepted"
		}
	}
	for _, ext := range csr.Extensions {
		switch {
		case hasArc(ext.Id, oidPuppetAuth):
			name := ext.Id.String()
			if n, ok := puppetAuthNames[ext.Id[len(oidPuppetAuth)]]; ok && len(ext.Id) == len(oidPuppetAuth)+1 {
				name = n + " (" + name + ")"
			}
			return fmt.Sprintf("CSR requests the authorization extension %s, which only the CA's operator may grant", name)
		case ext.Id.Equal(oidSAN):
			if r := sanOverreach(ext.Value, certname); r != "" {
				return r
			}
		}
	}
	return ""
}

// sanOverreach checks a subjectAltName extension: only DNS:<certname>.
func sanOverreach(der []byte, certname string) string {
	var names []asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &names); err != nil || len(rest) != 0 {
		return "CSR has an unreadable subject alternative name extension"
	}
	for _, n := range names {
		if n.Class != asn1.ClassContextSpecific {
			return "CSR has an unreadable subject alternative name"
		}
		var san string
		switch n.Tag {
		case 2: // dNSName
			if strings.EqualFold(string(n.Bytes), certname) {
				continue
			}
			san = "DNS:" + excerpt(n.Bytes)
		case 7: // iPAddress
			san = "IP:" + net.IP(n.Bytes).String()
		case 1: // rfc822Name
			san = "email:" + excerpt(n.Bytes)
		case 6: // uniformResourceIdentifier
			san = "URI:" + excerpt(n.Bytes)
		default: // otherName, directoryName, registeredID, …
			san = fmt.Sprintf("of type [%d]", n.Tag)
		}
		return fmt.Sprintf("CSR requests the subject alternative name %s: a VM may only have DNS:%s", san, certname)
	}
	return ""
}

// hasArc reports whether id lies below arc.
func hasArc(id, arc asn1.ObjectIdentifier) bool {
	return len(id) > len(arc) && id[:len(arc)].Equal(arc)
}
