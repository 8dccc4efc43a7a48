package web_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/ops/opstest"
	"github.com/vmglue/vmglue/internal/web"
)

const (
	secret  = "pw-hunter2"
	hostile = `<script>alert("x")</script>`
	token   = "operator-token-0123456789"
)

// env runs workers dns (working) and lb (failing: a dead letter per VM)
// on a real nats-server, with VM 1 and VM 2, whose name is hostile and
// which has a secret attribute.
func env(t *testing.T) *opstest.Env {
	t.Helper()
	e := opstest.New(t, "dns", "lb")
	e.Targets["lb"].Fail.Store(true)
	e.Publish(opstest.VM("1", eventbus.KindRunning))
	v := opstest.VM("2", eventbus.KindRunning)
	v.Name = hostile
	v.Attributes = map[string]string{"DB_PASSWORD": secret, "ROLE": "web"}
	e.Publish(v)
	e.Idle(t)
	e.WaitDeadLetters(t, 2)
	return e
}

// newServer is the page over e; its log goes to logBuf.
func newServer(t *testing.T, e *opstest.Env, actions bool, logBuf *bytes.Buffer) *web.Server {
	t.Helper()
	s, err := newPage(e, actions, logBuf)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newPage(e *opstest.Env, actions bool, logBuf *bytes.Buffer) (*web.Server, error) {
	return web.New(web.Options{JS: e.JS, Workers: []string{"dns", "lb"}, Actions: actions,
		Operators: map[string]string{token: "alice"}, Base: "/ui/", Log: zerolog.New(logBuf)})
}

// get serves a GET of path and returns the response and its body.
func get(t testing.TB, s http.Handler, path string, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	return do(t, s, req)
}

func do(t testing.TB, s http.Handler, req *http.Request) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestPages(t *testing.T) {
	e := env(t)
	for _, actions := range []bool{false, true} {
		s := newServer(t, e, actions, &bytes.Buffer{})
		tests := []struct {
			name, path string
			want       []string
		}{
			{"vms", "/", []string{"one/1", "one/2", "10.0.0.1", `class="converged"`, `class="dead_letter"`, "&lt;script&gt;"}},
			{"search by address", "/?q=10.0.0.1", []string{"one/1"}},
			{"search by hostile name", "/?q=" + url.QueryEscape(hostile), []string{"one/2", "&lt;script&gt;"}},
			{"vm", "/vm/one/1", []string{`<meta http-equiv="refresh" content="5">`, "running", "opennebula://one", "A web1 10.0.0.1", "boom", `<tr class="deadletter">`}},
			{"vm with secret", "/vm/one/2", []string{"DB_PASSWORD", eventbus.RedactedValue, "&lt;script&gt;", "ROLE"}},
			{"workers", "/workers", []string{"dns", "lb", "boom", "VMGLUE_EVENTS"}},
			{"dlq", "/dlq", []string{"lb", "one/1", "one/2", "boom", "running"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res, body := get(t, s, tt.path)
				if res.StatusCode != http.StatusOK {
					t.Fatalf("status %d: %s", res.StatusCode, body)
				}
				for _, w := range tt.want {
					if !strings.Contains(body, w) {
						t.Errorf("page lacks %q", w)
					}
				}
				if strings.Contains(body, secret) {
					t.Error("page shows a secret attribute's value")
				}
				if strings.Contains(body, "<script") {
					t.Error("page holds an unescaped <script")
				}
				if has := strings.Contains(body, `method="post"`); has != (actions && (tt.path == "/vm/one/1" || tt.path == "/vm/one/2" || tt.path == "/dlq")) {
					t.Errorf("actions %v: action form shown: %v", actions, has)
				}
				if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
					t.Errorf("Content-Security-Policy %q", csp)
				}
				if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control %q", cc)
				}
			})
		}
	}
}

func TestPageErrors(t *testing.T) {
	e := env(t)
	s := newServer(t, e, false, &bytes.Buffer{})
	tests := []struct {
		path string
		code int
	}{
		{"/vm/one/99", http.StatusNotFound},
		{"/vm/one/a.b", http.StatusBadRequest},
		{"/nope", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if res, body := get(t, s, tt.path); res.StatusCode != tt.code {
				t.Errorf("status %d, want %d: %s", res.StatusCode, tt.code, body)
			}
		})
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// session opens the VM page and returns the CSRF cookie and form token.
func session(t *testing.T, s http.Handler) (*http.Cookie, string) {
	t.Helper()
	res, body := get(t, s, "/vm/one/1")
	m := csrfField.FindStringSubmatch(body)
	if len(res.Cookies()) != 1 || m == nil {
		t.Fatalf("no csrf cookie or field: %v", res.Cookies())
	}
	if c := res.Cookies()[0]; !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Errorf("csrf cookie %v: want HttpOnly, SameSite=Strict", c)
	}
	return res.Cookies()[0], m[1]
}

// post serves a form POST.
func post(t *testing.T, s http.Handler, path string, form url.Values, cookie *http.Cookie, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if cookie != nil {
		req.AddCookie(cookie)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return do(t, s, req)
}

func storedEvents(t *testing.T, e *opstest.Env) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.JS.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().State.Msgs
}

func TestActionsRefused(t *testing.T) {
	e := env(t)
	var logBuf bytes.Buffer
	off := newServer(t, e, false, &logBuf)
	on := newServer(t, e, true, &logBuf)
	cookie, csrf := session(t, on)
	other, _ := session(t, on) // another browser's cookie
	tests := []struct {
		name   string
		s      http.Handler
		path   string
		form   url.Values
		cookie *http.Cookie
		hdr    map[string]string
	}{
		{"actions off", off, "/vm/one/1/replay", url.Values{"csrf": {csrf}, "token": {token}}, cookie, nil},
		{"actions off, dlq", off, "/dlq/1/drop", url.Values{"csrf": {csrf}, "token": {token}}, cookie, nil},
		{"no csrf token", on, "/vm/one/1/replay", url.Values{"token": {token}}, cookie, nil},
		{"no csrf cookie", on, "/vm/one/1/replay", url.Values{"csrf": {csrf}, "token": {token}}, nil, nil},
		{"csrf token of another cookie", on, "/vm/one/1/replay", url.Values{"csrf": {csrf}, "token": {token}}, other, nil},
		{"no credential", on, "/vm/one/1/replay", url.Values{"csrf": {csrf}}, cookie, nil},
		{"wrong credential", on, "/vm/one/1/replay", url.Values{"csrf": {csrf}, "token": {token + "x"}}, cookie, nil},
		{"cross-site", on, "/vm/one/1/replay", url.Values{"csrf": {csrf}, "token": {token}}, cookie, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"cross-origin", on, "/dlq/1/drop", url.Values{"csrf": {csrf}, "token": {token}}, cookie, map[string]string{"Origin": "http://evil.example"}},
	}
	before, dls := storedEvents(t, e), e.DeadLetters(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if res, body := post(t, tt.s, tt.path, tt.form, tt.cookie, tt.hdr); res.StatusCode != http.StatusForbidden {
				t.Errorf("status %d, want 403: %s", res.StatusCode, body)
			}
		})
	}
	if storedEvents(t, e) != before || e.DeadLetters(t) != dls {
		t.Error("a refused action changed the bus")
	}
	if strings.Contains(logBuf.String(), token) {
		t.Error("the log holds a token")
	}
	if res, _ := get(t, off, "/vm/one/1/replay"); res.StatusCode != http.StatusMethodNotAllowed && res.StatusCode != http.StatusNotFound {
		t.Errorf("GET of an action: %d", res.StatusCode)
	}
}

func TestActions(t *testing.T) {
	e := env(t)
	var logBuf bytes.Buffer
	s := newServer(t, e, true, &logBuf)
	cookie, csrf := session(t, s)
	before := storedEvents(t, e)
	e.Targets["lb"].Fail.Store(false) // the replayed event makes no new dead letter

	res, body := post(t, s, "/vm/one/1/replay", url.Values{"csrf": {csrf}, "token": {token}}, cookie, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if res.StatusCode != http.StatusOK || !strings.Contains(body, "replayed 1 events of one/1 (by alice)") {
		t.Fatalf("replay: %d %s", res.StatusCode, body)
	}
	if got := storedEvents(t, e); got != before+1 {
		t.Errorf("stored events %d, want %d", got, before+1)
	}

	// Basic auth works as well as the form field.
	req := httptest.NewRequest(http.MethodPost, "/dlq/1/drop", strings.NewReader(url.Values{"csrf": {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(cookie)
	req.SetBasicAuth("alice", token)
	if res, body := do(t, s, req); res.StatusCode != http.StatusOK || !strings.Contains(body, "dead letter 1 dropped") {
		t.Fatalf("drop: %d %s", res.StatusCode, body)
	}
	e.WaitDeadLetters(t, 1)

	// The other one is retried: lb now converges it, no dead letter is left.
	if res, body := post(t, s, "/dlq/2/retry", url.Values{"csrf": {csrf}, "token": {token}}, cookie, nil); res.StatusCode != http.StatusOK || !strings.Contains(body, "dead letter 2 retried") {
		t.Fatalf("retry: %d %s", res.StatusCode, body)
	}
	e.WaitDeadLetters(t, 0)
	e.Idle(t)
	if _, body := get(t, s, "/?q=one/2"); !strings.Contains(body, `<td class="converged"`) || strings.Contains(body, `class="dead_letter"`) {
		t.Errorf("vm 2 after the retry: %s", body)
	}

	for _, want := range []string{`"operator":"alice"`, `"action":"replay"`, `"action":"drop"`, `"action":"retry"`, `"dead_letter":1`} {
		if !strings.Contains(logBuf.String(), want) {
			t.Errorf("log lacks %s: %s", want, logBuf.String())
		}
	}
	if strings.Contains(logBuf.String(), token) {
		t.Error("the log holds a token")
	}
}

// The VM list shows PageSize VMs at a time: every VM on exactly one page,
// links to the neighbouring pages that keep the search, a page past the
// last shows the last, and a page that is not a number is one clear error.
func TestPagesPaginate(t *testing.T) {
	e := opstest.New(t, "dns")
	for _, id := range []string{"1", "2", "3", "4", "5"} {
		e.Publish(opstest.VM(id, eventbus.KindRunning))
	}
	e.Idle(t)
	s, err := web.New(web.Options{JS: e.JS, Workers: []string{"dns"}, Base: "/ui/", PageSize: 2, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	link := regexp.MustCompile(`<a href="([^"]*)" rel="(prev|next)">`)
	seen := map[string]int{}
	for _, tt := range []struct {
		path, head string
		prev, next string // the links' hrefs, "" for none
	}{
		{"/", "VMs 1&ndash;2 of 5 (page 1 of 3)", "", "/ui/?page=2"},
		{"/?page=2", "VMs 3&ndash;4 of 5 (page 2 of 3)", "/ui/?page=1", "/ui/?page=3"},
		{"/?page=3", "VMs 5&ndash;5 of 5 (page 3 of 3)", "/ui/?page=2", ""},
	} {
		res, body := get(t, s, tt.path)
		if res.StatusCode != http.StatusOK || !strings.Contains(body, tt.head) {
			t.Fatalf("%s: %d, want %q in:\n%s", tt.path, res.StatusCode, tt.head, body)
		}
		links := map[string]string{}
		for _, m := range link.FindAllStringSubmatch(body, -1) {
			links[m[2]] = strings.ReplaceAll(m[1], "&amp;", "&")
		}
		if links["prev"] != tt.prev || links["next"] != tt.next {
			t.Errorf("%s: links %v, want prev %q next %q", tt.path, links, tt.prev, tt.next)
		}
		for _, id := range []string{"1", "2", "3", "4", "5"} {
			if strings.Contains(body, `/ui/vm/one/`+id+`"`) {
				seen[id]++
			}
		}
	}
	for _, id := range []string{"1", "2", "3", "4", "5"} {
		if seen[id] != 1 {
			t.Errorf("VM %s on %d pages, want 1", id, seen[id])
		}
	}
	if _, body := get(t, s, "/?page=99"); !strings.Contains(body, "(page 3 of 3)") {
		t.Errorf("page past the last: %s", body)
	}
	// A search keeps its query in the links (escaped).
	q := `web<"&`
	for _, id := range []string{"6", "7", "8"} {
		v := opstest.VM(id, eventbus.KindRunning)
		v.Name = q + id
		e.Publish(v)
	}
	e.Idle(t)
	_, body := get(t, s, "/?q="+url.QueryEscape(q))
	m := link.FindStringSubmatch(body)
	if !strings.Contains(body, "VMs 1&ndash;2 of 3") || m == nil || m[2] != "next" {
		t.Fatalf("search, page 1: %s", body)
	}
	next, err := url.Parse(strings.ReplaceAll(m[1], "&amp;", "&"))
	if err != nil || next.Query().Get("q") != q || next.Query().Get("page") != "2" {
		t.Fatalf("next link %q: q %q, want %q", m[1], next.Query().Get("q"), q)
	}
	for _, bad := range []string{"0", "-1", "x", "1e3"} {
		res, body := get(t, s, "/?page="+bad)
		if res.StatusCode != http.StatusBadRequest || strings.Count(strings.TrimSpace(body), "\n") != 0 || !strings.Contains(body, "want a page number from 1") {
			t.Errorf("page %q: %d %q, want 400 and one line", bad, res.StatusCode, body)
		}
	}
	// One page: no pager at all.
	one, err := web.New(web.Options{JS: e.JS, Workers: []string{"dns"}, Base: "/ui/", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, one, "/"); strings.Contains(body, `class="pages"`) || !strings.Contains(body, "/ui/vm/one/8") {
		t.Errorf("a list that fits one page shows a pager or misses a VM")
	}
}
