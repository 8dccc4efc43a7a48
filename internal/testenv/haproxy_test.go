package testenv

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	r, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

func TestHAProxyLifecycle(t *testing.T) {
	be := StartHTTPBackend(t, "static1")
	h := StartHAProxy(t, HAProxyOptions{
		TCPAdmin: true,
		Backends: []HAProxyBackend{{Name: "web", Servers: []string{"s1 " + be.Addr()}}},
	})
	url := "http://" + h.Frontend["web"] + "/"
	if code, body := get(t, url); code != 200 || body != "static1" {
		t.Fatalf("static server: %d %q", code, body)
	}
	if r := h.Command("add server web/dyn 127.0.0.1:9"); r != "New server registered." {
		t.Fatalf("add server: %q", r)
	}
	h.Reload()
	if r := h.Command("show servers state web"); strings.Contains(r, " dyn ") {
		t.Fatalf("dynamic server survived the reload:\n%s", r)
	}
	if code, _ := get(t, url); code != 200 {
		t.Fatalf("after reload: %d", code)
	}
	h.Stop()
	if code, _ := get(t, url); code != 0 {
		t.Fatalf("stopped haproxy answered %d", code)
	}
	h.Start()
	if code, _ := get(t, url); code != 200 {
		t.Fatalf("after restart: %d", code)
	}
	if h.AdminTCP() == "" {
		t.Fatal("no TCP admin socket")
	}
}

func TestHTTPBackendSlow(t *testing.T) {
	be := StartHTTPBackend(t, "b")
	done := make(chan int)
	go func() {
		code, _ := get(t, "http://"+be.Addr()+"/slow?ms=200")
		done <- code
	}()
	WaitFor(t, 5*time.Second, "slow request in flight", func() bool { return be.InFlight() == 1 })
	if code := <-done; code != 200 {
		t.Fatalf("slow: %d", code)
	}
	if be.Served() != 1 {
		t.Fatalf("served %d", be.Served())
	}
}
