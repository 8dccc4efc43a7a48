package puppet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/vmglue/vmglue/internal/worker"
)

// The Puppet Server CA HTTP API (puppet-ca/v1), as verified against Puppet
// Server 7 in /work/shared/facts/puppet.md §3.
const caStatus = "/puppet-ca/v1/certificate_status/"

// certStatus is the part of a certificate_status answer the worker reads.
type certStatus struct {
	Name         string `json:"name"`
	State        string `json:"state"` // "requested", "signed", "revoked"
	SerialNumber int64  `json:"serial_number"`
	// NotBefore is set for "signed" and "revoked": "2026-11-21T05:29:24UTC".
	NotBefore string `json:"not_before"`
}

// caBackdate is how far Puppet Server's CA backdates a certificate: it sets
// not_before to the signing time minus one day (verified on Puppet Server
// 7: a certificate signed at 05:29:24 carries not_before 05:29:24 the day
// before), so that agents with a slow clock accept it.
const caBackdate = 24 * time.Hour

// notBeforeLayouts are the forms of not_before: Puppet Server 7 writes
// "2006-01-02T15:04:05UTC"; RFC 3339 is accepted too.
var notBeforeLayouts = []string{"2006-01-02T15:04:05UTC", time.RFC3339}

// issued returns when the CA signed the certificate: not_before plus the
// CA's backdating.
func (s certStatus) issued() (time.Time, error) {
	if s.NotBefore == "" {
		return time.Time{}, fmt.Errorf("certificate status of %s in state %q has no not_before", s.Name, s.State)
	}
	for _, layout := range notBeforeLayouts {
		if t, err := time.Parse(layout, s.NotBefore); err == nil {
			return t.UTC().Add(caBackdate), nil
		}
	}
	return time.Time{}, fmt.Errorf("certificate status of %s: not_before %q: unknown time format", s.Name, excerpt([]byte(s.NotBefore)))
}

// cleanCert revokes and deletes the signed certificate of certname and
// discards a pending CSR for it, so that a new VM with the same name can be
// signed. A certname the CA does not know is already clean. It returns what
// it removed, for the log: "signed", "revoked" (revoked by an earlier
// attempt), "requested" or "".
//
// It revokes with PUT certificate_status (desired_state "revoked"), which
// Puppet Server 7 serialises with every other CRL write, and then deletes
// with DELETE certificate_status. It does not use PUT /puppet-ca/v1/clean:
// in Puppet Server 7.9 that endpoint rewrites the CRL without the lock, so
// concurrent cleans (a burst of deleted VMs) can drop revocations from the
// CRL — seen in this project's tests as a cleaned certificate missing from
// the CRL.
func (c *client) cleanCert(ctx context.Context, certname string) (string, error) {
	op := "clean certificate " + certname
	st, found, err := c.certStatus(ctx, certname)
	if err != nil || !found {
		return "", err
	}
	path := caStatus + url.PathEscape(certname)
	switch st.State {
	case "signed":
		body, _ := json.Marshal(map[string]string{"desired_state": "revoked"})
		code, resp, err := c.do(ctx, http.MethodPut, path, nil, body)
		switch {
		case err != nil:
			return "", fmt.Errorf("%s: revoke: %w", op, err)
		case code == http.StatusConflict || code == http.StatusNotFound:
			// Removed meanwhile (transient): the next attempt looks again.
			return "", fmt.Errorf("%s: revoke: %s answered %d: %s", op, c.name, code, excerpt(resp))
		case code != http.StatusNoContent && code != http.StatusOK:
			return "", c.statusError(op+": revoke", code, resp)
		}
	case "revoked", "requested":
	default:
		return "", worker.Permanent(fmt.Errorf("%s: unknown certificate state %q", op, excerpt([]byte(st.State))))
	}
	code, resp, err := c.do(ctx, http.MethodDelete, path, nil, nil)
	if err != nil {
		return "", fmt.Errorf("%s: delete: %w", op, err)
	}
	if code != http.StatusNoContent && code != http.StatusOK && code != http.StatusNotFound {
		return "", c.statusError(op+": delete", code, resp)
	}
	return st.State, nil
}

// certStatus returns the CA's view of certname; found is false on 404.
func (c *client) certStatus(ctx context.Context, certname string) (certStatus, bool, error) {
	op := "get certificate status " + certname
	code, resp, err := c.do(ctx, http.MethodGet, caStatus+url.PathEscape(certname), nil, nil)
	if err != nil {
		return certStatus{}, false, fmt.Errorf("%s: %w", op, err)
	}
	switch code {
	case http.StatusOK:
	case http.StatusNotFound:
		return certStatus{}, false, nil
	default:
		return certStatus{}, false, c.statusError(op, code, resp)
	}
	var st certStatus
	if err := json.Unmarshal(resp, &st); err != nil {
		return certStatus{}, false, fmt.Errorf("%s: decode answer: %w", op, err)
	}
	return st, true, nil
}
