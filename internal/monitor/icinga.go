package monitor

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// icinga is a client of the Icinga2 REST API (/v1). Every request carries
// Accept: application/json and basic auth; the password never appears in
// an error.
type icinga struct {
	base     string
	user     string
	password string
	client   *http.Client
	m        *metrics
}

// errNotFound is Icinga's 404 "No objects found" (also what a user without
// the query permission gets).
var errNotFound = errors.New("no such object")

func newIcinga(cfg *IcingaConfig, m *metrics) (*icinga, error) {
	pw, err := eventbus.ReadSecret(cfg.PasswordFile, cfg.PasswordEnv)
	if err != nil {
		return nil, fmt.Errorf("read monitor.icinga password: %w", err)
	}
	pw = strings.TrimSpace(pw)
	if pw == "" {
		return nil, errors.New("monitor.icinga: the password is empty")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read monitor.icinga.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("monitor.icinga.ca_file: no PEM certificate in it")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &icinga{base: strings.TrimSuffix(cfg.URL, "/"), user: cfg.User, password: pw,
		client: &http.Client{Timeout: cfg.Timeout, Transport: tr}, m: m}, nil
}

// apiError is an answer of Icinga other than 2xx.
type apiError struct {
	Op     string
	Status int
	Msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("icinga %s: %d %s", e.Op, e.Status, e.Msg) }

// do sends one request. method "QUERY" is a POST with
// X-HTTP-Method-Override: GET (a query whose filter is in the body). A 404
// is errNotFound; 401, 403 and 400 (a request Icinga cannot take) and a
// validation failure are permanent, anything else transient.
func (c *icinga) do(ctx context.Context, op, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("icinga %s: encode: %w", op, err)
		}
		r = bytes.NewReader(b)
	}
	override := method == "QUERY"
	if override {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return fmt.Errorf("icinga %s: %w", op, err)
	}
	if override {
		req.Header.Set("X-HTTP-Method-Override", "GET")
	}
	req.SetBasicAuth(c.user, c.password)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		c.m.up.Set(0)
		c.m.requests.WithLabelValues(op, "error").Inc()
		// url.Error holds the URL only, which has no credentials.
		return fmt.Errorf("icinga %s: %w", op, err)
	}
	defer resp.Body.Close()
	c.m.up.Set(1)
	c.m.requests.WithLabelValues(op, strconv.Itoa(resp.StatusCode)).Inc()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("icinga %s: read answer: %w", op, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("icinga %s: %w", op, errNotFound)
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				return fmt.Errorf("icinga %s: decode answer: %w", op, err)
			}
		}
		return nil
	}
	e := &apiError{Op: op, Status: resp.StatusCode, Msg: errorText(b)}
	switch {
	case resp.StatusCode == 401, resp.StatusCode == 403, resp.StatusCode == 400,
		strings.Contains(e.Msg, "Validation failed"), strings.Contains(e.Msg, "may not contain"),
		strings.Contains(e.Msg, "references unknown"): // a template, zone or command the config names
		return worker.Permanent(e)
	}
	return e
}

// errorText is the short reason of an Icinga error answer.
func errorText(b []byte) string {
	var r struct {
		Status  string `json:"status"`
		Results []struct {
			Status string   `json:"status"`
			Errors []string `json:"errors"`
		} `json:"results"`
	}
	if json.Unmarshal(b, &r) == nil {
		parts := []string{r.Status}
		for _, x := range r.Results {
			parts = append(parts, x.Status)
			parts = append(parts, x.Errors...)
		}
		if s := strings.TrimSpace(strings.Join(parts, " ")); s != "" {
			return clean(strings.Join(strings.Fields(s), " "))
		}
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return clean(string(b))
}

func hostPath(name string) string { return "/v1/objects/hosts/" + url.PathEscape(name) }

// hostState is a host object as Icinga returns it.
type hostState struct {
	Templates   []string       `json:"templates"`
	Address     string         `json:"address"`
	Address6    string         `json:"address6"`
	DisplayName string         `json:"display_name"`
	CheckCmd    string         `json:"check_command"`
	Vars        map[string]any `json:"vars"`
}

// getHost returns the host called name, errNotFound when there is none.
func (c *icinga) getHost(ctx context.Context, name string) (*hostState, error) {
	var r struct {
		Results []struct {
			Attrs hostState `json:"attrs"`
		} `json:"results"`
	}
	q := "?attrs=templates&attrs=address&attrs=address6&attrs=display_name&attrs=check_command&attrs=vars"
	if err := c.do(ctx, "get_host", http.MethodGet, hostPath(name)+q, nil, &r); err != nil {
		return nil, err
	}
	if len(r.Results) != 1 {
		return nil, fmt.Errorf("icinga get_host: %d results", len(r.Results))
	}
	h := r.Results[0].Attrs
	// templates lists the object itself first, then its imports.
	if len(h.Templates) > 0 && h.Templates[0] == name {
		h.Templates = h.Templates[1:]
	}
	return &h, nil
}

func (c *icinga) createHost(ctx context.Context, name string, s hostSpec) error {
	body := map[string]any{"templates": s.Templates, "attrs": s.Attrs}
	return c.do(ctx, "create_host", http.MethodPut, hostPath(name), body, nil)
}

func (c *icinga) modifyHost(ctx context.Context, name string, attrs map[string]string) error {
	return c.do(ctx, "modify_host", http.MethodPost, hostPath(name), map[string]any{"attrs": attrs}, nil)
}

// deleteHost deletes the host with its services and downtimes; a missing
// host is not an error.
func (c *icinga) deleteHost(ctx context.Context, name string) error {
	err := c.do(ctx, "delete_host", http.MethodDelete, hostPath(name)+"?cascade=1", nil, nil)
	if errors.Is(err, errNotFound) {
		return nil
	}
	return err
}

// markedHosts returns the hosts whose vars.vmglue_owner is owner: name →
// their vars.vmglue_vm.
func (c *icinga) markedHosts(ctx context.Context, owner string) (map[string]string, error) {
	var r struct {
		Results []struct {
			Name  string `json:"name"`
			Attrs struct {
				Vars map[string]any `json:"vars"`
			} `json:"attrs"`
		} `json:"results"`
	}
	q := map[string]any{"filter": "host.vars." + ownerVar + "==o", "filter_vars": map[string]string{"o": owner},
		"attrs": []string{"vars"}}
	err := c.do(ctx, "query_hosts", "QUERY", "/v1/objects/hosts", q, &r)
	if err != nil && !errors.Is(err, errNotFound) {
		return nil, err
	}
	out := map[string]string{}
	for _, h := range r.Results {
		out[h.Name] = fmt.Sprint(h.Attrs.Vars[vmVar])
	}
	return out, nil
}

// downtimeFilter selects vmglue's downtimes of a host with one comment,
// the host's and its services'.
func downtimeFilter(host, comment string) map[string]any {
	return map[string]any{
		"filter":      "downtime.host_name==h && downtime.author==a && downtime.comment==c",
		"filter_vars": map[string]string{"h": host, "a": downtimeAuthor, "c": comment},
	}
}

// hasDowntime reports whether the host has its downtime with comment.
func (c *icinga) hasDowntime(ctx context.Context, host, comment string) (bool, error) {
	var r struct {
		Results []struct {
			Attrs struct {
				ServiceName string `json:"service_name"`
			} `json:"attrs"`
		} `json:"results"`
	}
	q := downtimeFilter(host, comment)
	q["attrs"] = []string{"service_name"}
	err := c.do(ctx, "query_downtimes", "QUERY", "/v1/objects/downtimes", q, &r)
	if errors.Is(err, errNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, d := range r.Results {
		if d.Attrs.ServiceName == "" {
			return true, nil
		}
	}
	return false, nil
}

func (c *icinga) scheduleDowntime(ctx context.Context, host, comment string, start, end int64) error {
	body := map[string]any{
		"type": "Host", "filter": "host.name==h", "filter_vars": map[string]string{"h": host},
		"author": downtimeAuthor, "comment": comment, "start_time": start, "end_time": end,
		"fixed": true, "all_services": true,
	}
	return c.do(ctx, "schedule_downtime", http.MethodPost, "/v1/actions/schedule-downtime", body, nil)
}

// removeDowntime removes exactly vmglue's downtimes of the host with that
// comment; none is not an error.
func (c *icinga) removeDowntime(ctx context.Context, host, comment string) error {
	body := downtimeFilter(host, comment)
	body["type"] = "Downtime"
	err := c.do(ctx, "remove_downtime", http.MethodPost, "/v1/actions/remove-downtime", body, nil)
	if errors.Is(err, errNotFound) {
		return nil
	}
	return err
}
