// Package web is the operator's page of `vmglue serve`: server-rendered HTML
// (html/template, templates embedded, no JavaScript) over the ops functions.
//
// Pages (relative to where the handler is mounted, /ui/ by default):
//
//	/                 the VMs, searchable by id, name and address (ops.ListVMs)
//	/vm/<cloud>/<id>  one VM: timeline, each worker's objects and last error,
//	                  its dead letters (ops.VMReports); refreshes every 5 s
//	/workers          consumers and dead-letter depth (ops.GetStatus, ops.LastErrors)
//	/dlq              the dead letters (ops.DeadLetters)
//
// The page is read-only unless Options.Actions is set. Actions (replay a VM,
// retry or drop a dead letter) are POSTs that need an operator token (form
// field "token" or the password of HTTP basic auth, compared in constant
// time) and a CSRF token (an HMAC, under a per-process key, of a random
// cookie; cross-origin requests are refused by http.CrossOriginProtection
// too). Each action is logged with the operator's name. Secret VM attributes
// are always shown redacted: the page never sets ShowSecrets.
package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
)

//go:embed templates/*.html
var templateFS embed.FS

// Options configure the page.
type Options struct {
	JS      jetstream.JetStream
	Workers []string              // the configured worker names
	Secrets *eventbus.SecretNames // nil: eventbus.DefaultSecretPatterns
	// Actions turns on the POST actions; they need one of Operators.
	Actions bool
	// Operators maps a token to the operator's name.
	Operators map[string]string
	// Base is the path the handler is mounted on ("/ui/"): links start
	// with it.
	Base string
	// PageSize is how many VMs one page of the list shows
	// (DefaultPageSize).
	PageSize int
	Log      zerolog.Logger
}

// DefaultPageSize is Options.PageSize when unset: a list a browser shows
// at once (10,000 rows would be megabytes of HTML).
const DefaultPageSize = 500

// Server is the page's http.Handler.
type Server struct {
	o     Options
	pages map[string]*template.Template
	key   []byte // the per-process CSRF key
	mux   http.Handler
}

const (
	csrfCookie = "vmglue_csrf"
	cookieLen  = 52 // two rand.Text
)

// New builds the page's handler; it serves paths with Base stripped.
func New(o Options) (*Server, error) {
	if o.Base == "" {
		o.Base = "/"
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	s := &Server{o: o, pages: map[string]*template.Template{}, key: make([]byte, 32)}
	if _, err := rand.Read(s.key); err != nil {
		return nil, fmt.Errorf("csrf key: %w", err)
	}
	funcs := template.FuncMap{"age": age, "ts": ts, "base": func() string { return o.Base },
		"class": func(state string) string { return strings.ReplaceAll(state, " ", "_") },
		"inc":   func(n int) int { return n + 1 }}
	for _, p := range []string{"vms", "vm", "workers", "dlq", "done"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", p, err)
		}
		s.pages[p] = t
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.vms)
	mux.HandleFunc("GET /vm/{cloud}/{id}", s.vm)
	mux.HandleFunc("GET /workers", s.workers)
	mux.HandleFunc("GET /dlq", s.dlq)
	mux.HandleFunc("POST /vm/{cloud}/{id}/replay", s.action(s.replay))
	mux.HandleFunc("POST /dlq/{seq}/{settle}", s.action(s.settle))
	s.mux = http.NewCrossOriginProtection().Handler(mux)
	return s, nil
}

// ServeHTTP serves the page, with headers that keep it out of frames and
// caches.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

// page is what every template gets.
type page struct {
	Title   string
	Actions bool
	CSRF    string
	Refresh int
	Data    any
}

// render executes page p; an error before any output is a 500.
func (s *Server) render(w http.ResponseWriter, r *http.Request, p string, pg page) {
	if s.o.Actions {
		pg.Actions = true
		pg.CSRF = s.csrfToken(w, r)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := s.pages[p].Execute(w, pg); err != nil {
		s.o.Log.Error().Err(err).Str("page", p).Msg("render operator's page")
	}
}

// fail answers an error page in text (escaping is http.Error's).
func (s *Server) fail(w http.ResponseWriter, code int, err error) {
	http.Error(w, err.Error(), code)
}

// csrfToken returns the form token of the client's CSRF cookie, setting a
// new cookie when it has none.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(csrfCookie)
	v := ""
	if err == nil && len(c.Value) == cookieLen {
		v = c.Value
	} else {
		v = rand.Text() + rand.Text()
		http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: v, Path: s.o.Base, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	}
	return s.mac(v)
}

func (s *Server) mac(v string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(v))
	return hex.EncodeToString(m.Sum(nil))
}

// checkCSRF reports whether the form's csrf field is the MAC of the cookie.
func (s *Server) checkCSRF(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || c.Value == "" {
		return false
	}
	return hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(s.mac(c.Value)))
}

// operator returns the name of the operator whose token the request
// carries (form field "token" or basic auth password), "" for none. Every
// token is compared, in constant time.
func (s *Server) operator(r *http.Request) string {
	tok := r.PostFormValue("token")
	if _, pw, ok := r.BasicAuth(); ok && tok == "" {
		tok = pw
	}
	name := ""
	for t, n := range s.o.Operators {
		if subtle.ConstantTimeCompare([]byte(t), []byte(tok)) == 1 && tok != "" {
			name = n
		}
	}
	return name
}

// action wraps an action handler: refused (403) unless actions are on, the
// CSRF token matches and an operator's token is given.
func (s *Server) action(fn func(w http.ResponseWriter, r *http.Request, who string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.o.Actions {
			http.Error(w, "actions are turned off (web.actions)", http.StatusForbidden)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if !s.checkCSRF(r) {
			s.o.Log.Warn().Str("path", r.URL.Path).Str("remote", r.RemoteAddr).Msg("operator's page: action refused, bad csrf token")
			http.Error(w, "bad or missing csrf token: reload the page", http.StatusForbidden)
			return
		}
		who := s.operator(r)
		if who == "" {
			s.o.Log.Warn().Str("path", r.URL.Path).Str("remote", r.RemoteAddr).Msg("operator's page: action refused, no valid operator token")
			http.Error(w, "an operator token is required", http.StatusForbidden)
			return
		}
		fn(w, r, who)
	}
}

func age(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return time.Since(t).Round(time.Second).String()
}

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}
