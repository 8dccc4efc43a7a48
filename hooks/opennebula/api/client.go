// Package api is a small client of OpenNebula's XML-RPC API (oned), built on
// github.com/kolo/xmlrpc as OpenNebula's own Go client (goca) is: the calls
// the sweep needs, one.vmpool.infoextended with pagination and one.vm.info.
//
// The endpoint and the credentials are found as OpenNebula's CLI finds them:
// ONE_XMLRPC (default http://localhost:2633/RPC2) and the first line of the
// file named by ONE_AUTH (default ~/.one/one_auth), "user:password";
// Options override both. An https endpoint is verified against the system
// roots or Options.CAFile. Every call has a timeout.
//
// oned answers every call with an array: [true, body, 0] on success,
// [false, message, code, ...] on failure. A failure is an *Error that
// matches ErrAuthentication, ErrAuthorization or ErrNotFound by its code; an
// XML-RPC fault matches ErrFault. No error or log line ever holds the
// password: an authentication failure names the user and the file the
// credentials came from.
package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/kolo/xmlrpc"

	"github.com/vmglue/vmglue/eventbus"
)

// Options configure a Client. Zero values take the defaults.
type Options struct {
	// Endpoint of oned's XML-RPC server; default $ONE_XMLRPC, else DefaultEndpoint.
	Endpoint string
	// AuthFile holds "user:password" on its first line; default $ONE_AUTH,
	// else ~/.one/one_auth.
	AuthFile string
	// CAFile is a PEM bundle that verifies an https endpoint (default: the system roots).
	CAFile string
	// Timeout of one call (one page of the pool); default 60s.
	Timeout time.Duration
	// PageSize is the number of VMs per one.vmpool.infoextended call; default 500.
	PageSize int
	// Parallel is the number of pages asked for and parsed at once; default 2.
	Parallel int
	// MaxResponse bounds one answer; default 1 GiB (oned's MESSAGE_SIZE).
	MaxResponse int64
	// Protect keeps each VM's secrets off the bus, as the hook does (nil:
	// eventbus.Secrets{}, secrets redacted and the challenge left out).
	Protect func(*eventbus.VM)
}

// Defaults of Options.
const (
	DefaultTimeout     = 60 * time.Second
	DefaultPageSize    = 500
	DefaultMaxResponse = 1 << 30
)

// Client calls one oned. It is safe for concurrent use.
type Client struct {
	endpoint string
	creds    credentials
	http     *http.Client
	o        Options
}

// New reads the credentials and prepares the HTTP client. It does not call oned.
func New(o Options) (*Client, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	if o.Parallel <= 0 {
		o.Parallel = 2
	}
	if o.MaxResponse <= 0 {
		o.MaxResponse = DefaultMaxResponse
	}
	ep := endpoint(o.Endpoint)
	if !strings.HasPrefix(ep, "http://") && !strings.HasPrefix(ep, "https://") {
		return nil, fmt.Errorf("opennebula endpoint %s: want an http:// or https:// URL", eventbus.RedactURL(ep))
	}
	creds, err := loadCredentials(o.AuthFile)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read opennebula CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("opennebula CA file %s: no PEM certificate in it", o.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Client{endpoint: ep, creds: creds, http: &http.Client{Transport: tr}, o: o}, nil
}

// Endpoint is the URL the client calls, without userinfo.
func (c *Client) Endpoint() string { return eventbus.RedactURL(c.endpoint) }

// User is the OpenNebula user of the credentials.
func (c *Client) User() string { return c.creds.user }

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// call makes one call with the session string first and returns the body of
// a successful answer (a string for the info calls).
func (c *Client) call(ctx context.Context, method string, args ...any) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	body, err := xmlrpc.EncodeMethodCall(method, append([]any{c.creds.session}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("%s: encode call: %w", method, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", method, c.Endpoint(), c.redact(err))
	}
	req.Header.Set("Content-Type", "text/xml")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: call %s: %w", method, c.Endpoint(), c.redact(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("%s: %s answered http %s: %w", method, c.Endpoint(), resp.Status, ErrProtocol)
	}
	// One allocation for a pool page of known length, not a doubling series.
	buf := bytes.NewBuffer(make([]byte, 0, min(max(resp.ContentLength, 0), c.o.MaxResponse)+bytes.MinRead))
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, c.o.MaxResponse+1))
	raw := buf.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%s: read answer from %s: %w", method, c.Endpoint(), c.redact(err))
	}
	if int64(len(raw)) > c.o.MaxResponse {
		return nil, fmt.Errorf("%s: answer larger than %d bytes: %w (use a smaller page size)", method, c.o.MaxResponse, ErrProtocol)
	}
	return c.result(method, xmlrpc.Response(raw))
}

// result checks the [success, body, code, ...] array.
func (c *Client) result(method string, r xmlrpc.Response) (any, error) {
	out, fast := fastResult(r)
	if !fast {
		if err := r.Err(); err != nil {
			var f xmlrpc.FaultError
			if errors.As(err, &f) {
				return nil, &Error{Method: method, Fault: true, Code: f.Code, Message: c.redact(errors.New(f.String)).Error()}
			}
			return nil, fmt.Errorf("%s: decode fault: %w: %v", method, ErrProtocol, err)
		}
		if err := r.Unmarshal(&out); err != nil {
			return nil, fmt.Errorf("%s: decode answer: %w: %v", method, ErrProtocol, err)
		}
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("%s: answer has %d elements, want [success, body, code]: %w", method, len(out), ErrProtocol)
	}
	ok, isBool := out[0].(bool)
	if !isBool {
		return nil, fmt.Errorf("%s: first element is %T, want boolean: %w", method, out[0], ErrProtocol)
	}
	if ok {
		return out[1], nil
	}
	msg, _ := out[1].(string)
	code := int64(0)
	if len(out) > 2 {
		code, _ = out[2].(int64)
	}
	return nil, &Error{Method: method, Code: int(code), Message: c.redact(errors.New(msg)).Error(), Who: c.creds.String()}
}

// redact removes the session's secret from an error text (a proxy or a
// server that echoes the request must not leak it).
func (c *Client) redact(err error) error {
	_, secret, _ := strings.Cut(c.creds.session, ":")
	if secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "***"))
}
