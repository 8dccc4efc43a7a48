package testenv

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// HTTPBackend is a real HTTP server on 127.0.0.1 that stands in for a VM's
// service behind HAProxy:
//
//	GET /           200, body "<name>"
//	GET /slow?ms=N  200 after N milliseconds, body "<name> slow"
//
// It counts requests in flight and served, so a test can await a slow
// request having reached it.
type HTTPBackend struct {
	Name string
	// IP and Port are where it listens.
	IP   string
	Port int

	srv      *httptest.Server
	inflight atomic.Int64
	served   atomic.Int64
}

// StartHTTPBackend starts a backend named name; it is closed in t.Cleanup.
func StartHTTPBackend(t testing.TB, name string) *HTTPBackend {
	t.Helper()
	b := &HTTPBackend{Name: name}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(b.serve))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("http backend listen: %v", err)
	}
	b.srv.Listener = l
	b.srv.Start()
	a := l.Addr().(*net.TCPAddr)
	b.IP, b.Port = a.IP.String(), a.Port
	t.Cleanup(func() {
		b.srv.CloseClientConnections()
		b.srv.Close()
	})
	return b
}

func (b *HTTPBackend) serve(w http.ResponseWriter, r *http.Request) {
	b.inflight.Add(1)
	defer b.inflight.Add(-1)
	defer b.served.Add(1)
	switch r.URL.Path {
	case "/slow":
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 {
			http.Error(w, "ms: want a number of milliseconds", http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "%s slow", b.Name)
	default:
		fmt.Fprint(w, b.Name)
	}
}

// InFlight returns the number of requests being served right now.
func (b *HTTPBackend) InFlight() int64 { return b.inflight.Load() }

// Served returns the number of requests answered so far.
func (b *HTTPBackend) Served() int64 { return b.served.Load() }

// Addr returns "ip:port".
func (b *HTTPBackend) Addr() string { return net.JoinHostPort(b.IP, strconv.Itoa(b.Port)) }
