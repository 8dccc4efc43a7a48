package lb

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

func TestAddServerServesTraffic(t *testing.T) {
	tests := []struct {
		name   string
		tcp    bool
		server ServerOptions
	}{
		{name: "unix socket, no checks"},
		{name: "unix socket, health checks", server: ServerOptions{Check: true, Inter: 100 * time.Millisecond, Rise: 1, Weight: 10}},
		{name: "tcp socket, maxconn", tcp: true, server: ServerOptions{MaxConn: 50}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			web := testenv.StartHTTPBackend(t, "web-vm")
			api := testenv.StartHTTPBackend(t, "api-vm")
			h := testenv.StartHAProxy(t, testenv.HAProxyOptions{TCPAdmin: tc.tcp,
				Backends: []testenv.HAProxyBackend{{Name: "web"}, {Name: "api"}}})
			addr := h.Admin()
			if tc.tcp {
				addr = h.AdminTCP()
			}
			cfg := testConfig("lb1", addr)
			cfg.Server = tc.server
			tgt, rec := newTarget(t, cfg)
			vm := testVM("42", "web:"+port(web)+", api:"+port(api))

			have := mustConverge(t, tgt, vm, nil)
			wantVal := "127.0.0.1:" + port(web)
			if o := tc.server.options(); o != "" {
				wantVal += " " + o
			}
			if got := have["lb1/web/one-42"]; got != wantVal {
				t.Fatalf("applied %v, want lb1/web/one-42 = %q", have, wantVal)
			}
			st := servers(t, h)
			for _, k := range []string{"web/one-42", "api/one-42"} {
				if s, ok := st[k]; !ok || s.Admin != 0 {
					t.Fatalf("%s: %+v (present %v), want enabled", k, s, ok)
				}
			}
			awaitBody(t, h.Frontend["web"], "web-vm")
			awaitBody(t, h.Frontend["api"], "api-vm")

			rec.take()
			again, err := applyOnce(t, tgt, vm, have)
			if err != nil || !maps.Equal(again, have) {
				t.Fatalf("second apply: %v, %v", again, err)
			}
			if c := changing(rec.take()); len(c) != 0 {
				t.Fatalf("second apply changed state: %q", c)
			}
		})
	}
}

func TestDrainWaitsForInflightRequest(t *testing.T) {
	be := testenv.StartHTTPBackend(t, "vm7")
	h := testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{{Name: "web"}}})
	tgt, _ := newTarget(t, testConfig("lb1", h.Admin()))
	vm := testVM("7", "web:"+port(be))
	have := mustConverge(t, tgt, vm, nil)
	awaitBody(t, h.Frontend["web"], "vm7")

	type result struct {
		code int
		body string
	}
	done := make(chan result, 1)
	go func() {
		code, body := get(context.Background(), "http://"+h.Frontend["web"]+"/slow?ms=1500")
		done <- result{code, body}
	}()
	testenv.WaitFor(t, 5*time.Second, "slow request at the backend", func() bool { return be.InFlight() == 1 })

	vm.Kind = eventbus.KindDeleted
	have, err := applyOnce(t, tgt, vm, have)
	if !isRequeue(err) {
		t.Fatalf("delete with a request in flight: %v, want a requeue", err)
	}
	s, ok := servers(t, h)["web/one-7"]
	if !ok || s.Admin&adminForcedDrain == 0 {
		t.Fatalf("server while draining: %+v (present %v), want DRAIN", s, ok)
	}
	if sp, err := parseSpec(have["lb1/web/one-7"]); err != nil || sp.Since.IsZero() {
		t.Fatalf("recorded value %q (%v), want draining since", have["lb1/web/one-7"], err)
	}
	if code, _ := get(context.Background(), "http://"+h.Frontend["web"]+"/"); code != 503 {
		t.Fatalf("new request to a draining pool: %d, want 503", code)
	}

	// Order of events, not times: while the backend still serves the slow
	// request every round is a requeue and the server stays; the request
	// is answered in full; only then is the server deleted.
	testenv.WaitFor(t, 10*time.Second, "slow request served at the backend", func() bool {
		have, err = applyOnce(t, tgt, vm, have)
		if !isRequeue(err) && be.InFlight() != 0 {
			t.Fatalf("server removed (%v) while the backend still served the slow request", err)
		}
		if _, ok := servers(t, h)["web/one-7"]; !ok && be.InFlight() != 0 {
			t.Fatal("server gone while the backend still served the slow request")
		}
		return be.InFlight() == 0
	})
	r := <-done
	if r.code != 200 || r.body != "vm7 slow" {
		t.Fatalf("slow request: %d %q, want 200 %q", r.code, r.body, "vm7 slow")
	}
	have = mustConverge(t, tgt, vm, have)
	if len(have) != 0 {
		t.Fatalf("applied after delete: %v", have)
	}
	if _, ok := servers(t, h)["web/one-7"]; ok {
		t.Fatal("server still in haproxy")
	}
	metric(t, tgt.metrics.added.WithLabelValues("lb1"), 1)
	metric(t, tgt.metrics.removed.WithLabelValues("lb1", "drained"), 1)
	metric(t, tgt.metrics.removed.WithLabelValues("lb1", "timeout"), 0)
}

func TestDrainTimeoutForcesRemoval(t *testing.T) {
	be := testenv.StartHTTPBackend(t, "vm8")
	h := testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{{Name: "web"}}})
	cfg := testConfig("lb1", h.Admin())
	cfg.DrainTimeout = 300 * time.Millisecond
	tgt, rec, logs := newTargetLog(t, cfg)
	vm := testVM("8", "web:"+port(be))
	have := mustConverge(t, tgt, vm, nil)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan int, 1)
	go func() { code, _ := get(ctx, "http://"+h.Frontend["web"]+"/slow?ms=20000"); done <- code }()
	testenv.WaitFor(t, 5*time.Second, "slow request at the backend", func() bool { return be.InFlight() == 1 })

	vm.Kind = eventbus.KindStopped
	start := time.Now()
	have = mustConverge(t, tgt, vm, have)
	if len(have) != 0 {
		t.Fatalf("applied: %v", have)
	}
	if _, ok := servers(t, h)["web/one-8"]; ok {
		t.Fatal("server still in haproxy after the drain timeout")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("removal took %s", d)
	}
	if code := <-done; code == 200 {
		t.Fatal("the cut request got 200")
	}
	cmds := changing(rec.take())
	if !contains(cmds, "shutdown sessions server web/one-8") {
		t.Fatalf("commands %q: want the sessions cut", cmds)
	}
	warn := logs.Entries(t, "drain timeout reached, cutting the remaining sessions")
	if len(warn) != 1 || warn[0]["level"] != "warn" || warn[0]["server"] != "lb1/web/one-8" ||
		warn[0]["sessions"] != float64(1) || warn[0]["timeout"] == nil {
		t.Fatalf("drain timeout log entries %v, want one warning for lb1/web/one-8 with 1 session", warn)
	}
	metric(t, tgt.metrics.removed.WithLabelValues("lb1", "timeout"), 1)
}

// A vmglue restarted mid-drain gets the drain start back from the registry.
func TestDrainResumesAfterRestart(t *testing.T) {
	be := testenv.StartHTTPBackend(t, "vm9")
	h := testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{{Name: "web"}}})
	cfg := testConfig("lb1", h.Admin())
	cfg.DrainTimeout = time.Hour
	first, _ := newTarget(t, cfg)
	vm := testVM("9", "web:"+port(be))
	have := mustConverge(t, first, vm, nil)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go get(ctx, "http://"+h.Frontend["web"]+"/slow?ms=20000")
	testenv.WaitFor(t, 5*time.Second, "slow request at the backend", func() bool { return be.InFlight() == 1 })
	vm.Kind = eventbus.KindDeleted
	have, err := applyOnce(t, first, vm, have)
	if !isRequeue(err) {
		t.Fatalf("first drain round: %v", err)
	}

	// The restarted vmglue sees the recorded value, backdated past the timeout.
	sp, _ := parseSpec(have["lb1/web/one-9"])
	sp.Since = sp.Since.Add(-2 * time.Hour)
	have["lb1/web/one-9"] = sp.String()
	second, rec := newTarget(t, cfg)
	have = mustConverge(t, second, vm, have)
	if len(have) != 0 {
		t.Fatalf("applied: %v", have)
	}
	cmds := changing(rec.take())
	want := []string{"shutdown sessions server web/one-9", "disable server web/one-9", "del server web/one-9"}
	if !equalStrings(cmds, want) {
		t.Fatalf("commands after restart %q, want %q (no new drain)", cmds, want)
	}
}

func TestDeleteNeverAddedIsNoop(t *testing.T) {
	h := testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{{Name: "web"}}})
	tgt, rec := newTarget(t, testConfig("lb1", h.Admin()))
	vm := testVM("11", "web:8080")
	vm.Kind = eventbus.KindDeleted
	got, err := applyOnce(t, tgt, vm, nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("delete of a VM never added: %v, %v", got, err)
	}
	if c := rec.take(); len(c) != 0 {
		t.Fatalf("commands sent: %q", c)
	}
	// A VM with no pool at all is a no-op too.
	if got, err := applyOnce(t, tgt, testVM("12", ""), worker.Objects{}); err != nil || len(got) != 0 {
		t.Fatalf("vm without backends: %v, %v", got, err)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
