package puppet

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/vmglue/vmglue/internal/worker"
)

// client talks HTTPS with the worker's client certificate to one server
// (the CA or PuppetDB) and classifies failures: transport trouble, 5xx and
// 429 are transient; 400, 401, 403 and TLS trust failures are permanent.
type client struct {
	name string // "ca" or "puppetdb", for errors
	base *url.URL
	http *http.Client
}

// newTLSConfig loads the worker's certificate and the CA bundle. Errors name
// the file, never its content.
func newTLSConfig(c TLSConfig) (*tls.Config, error) {
	caPEM, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("read tls.ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("tls.ca_file %s: no PEM certificate", c.CAFile)
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load tls.cert_file/tls.key_file %s: %w", c.CertFile, err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func newClient(name, base string, tc *tls.Config, timeout time.Duration) (*client, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil {
		return nil, fmt.Errorf("parse %s url: %w", name, err)
	}
	tr := &http.Transport{
		TLSClientConfig:     tc,
		DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
		TLSHandshakeTimeout: timeout,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	return &client{name: name, base: u, http: &http.Client{Transport: tr, Timeout: timeout}}, nil
}

// do sends one request and returns the status and (at most 64 KiB of) body.
// A transport error is returned classified; the caller classifies statuses.
func (c *client) do(ctx context.Context, method, path string, query url.Values, body []byte) (int, []byte, error) {
	return c.doAccept(ctx, method, path, query, body, "application/json")
}

// doAccept is do asking for the media type accept.
func (c *client) doAccept(ctx context.Context, method, path string, query url.Values, body []byte, accept string) (int, []byte, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, worker.Permanent(fmt.Errorf("build %s request: %w", c.name, err))
	}
	req.Header.Set("Accept", accept)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, c.transportError(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, nil, fmt.Errorf("read %s response from %s: %w", c.name, c.base.Host, err)
	}
	return resp.StatusCode, b, nil
}

// transportError strips the URL from err and decides whether retrying can
// help: a server we do not trust, or one that refuses our certificate, is
// a configuration problem; anything else (refused, reset, timeout) is not.
func (c *client) transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var (
		unknownCA x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		hostname  x509.HostnameError
		verify    *tls.CertificateVerificationError
		alert     tls.AlertError
	)
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &invalid), errors.As(err, &hostname), errors.As(err, &verify):
		return worker.Permanent(fmt.Errorf("%s %s: server certificate not trusted (check tls.ca_file and the url's host name): %w", c.name, c.base.Host, err))
	case errors.As(err, &alert) && isCertAlert(alert), remoteCertAlert(err):
		return worker.Permanent(fmt.Errorf("%s %s: client certificate refused (check tls.cert_file: signed by this CA, not revoked): %w", c.name, c.base.Host, err))
	}
	return fmt.Errorf("%s %s unreachable: %w", c.name, c.base.Host, err)
}

// certAlerts are the TLS alerts about our certificate: bad_certificate,
// unsupported_certificate, certificate_revoked, certificate_expired,
// certificate_unknown, unknown_ca, certificate_required.
var certAlerts = []tls.AlertError{42, 43, 44, 45, 46, 48, 116}

// isCertAlert reports whether a is one of certAlerts.
func isCertAlert(a tls.AlertError) bool { return slices.Contains(certAlerts, a) }

// remoteCertAlert reports whether err is an alert of certAlerts sent by the
// server. crypto/tls returns a received alert as a net.OpError "remote
// error" around an unexported type, not as a tls.AlertError; its text is
// the same as the AlertError's of that number.
func remoteCertAlert(err error) bool {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return false
	}
	for _, a := range certAlerts {
		if op.Err.Error() == a.Error() {
			return true
		}
	}
	return false
}

// statusError turns an unexpected HTTP status into an error: 5xx, 408 and
// 429 are transient, any other status permanent. reason is a short,
// printable excerpt of the body.
func (c *client) statusError(op string, code int, body []byte) error {
	err := fmt.Errorf("%s: %s %s answered %d %s: %s", op, c.name, c.base.Host, code, http.StatusText(code), excerpt(body))
	switch {
	case code >= 500, code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
		return err
	case code == http.StatusUnauthorized, code == http.StatusForbidden:
		// An unverifiable client certificate is taken as none: the
		// request is anonymous, so name the certificate as well.
		hint := "allow the worker's certname in the CA's auth.conf; check that tls.cert_file is signed by this CA"
		if c.name == "puppetdb" {
			hint = "add the worker's certname to PuppetDB's certificate-allowlist; check that tls.cert_file is signed by this CA"
		}
		return worker.Permanent(fmt.Errorf("%w (%s)", err, hint))
	}
	return worker.Permanent(err)
}

// excerpt returns the first line of body, printable, at most 200 bytes.
func excerpt(body []byte) string {
	s := strings.TrimSpace(string(body))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return '?'
	}, s)
}
