package lb

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// A crash between "add server" and the registry: the runtime passes the
// pending object as ours, the server sits in maintenance; Apply enables it.
func TestInterruptedAddIsCompleted(t *testing.T) {
	be := testenv.StartHTTPBackend(t, "vm60")
	h := testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{{Name: "web"}}})
	tgt, rec := newTarget(t, testConfig("lb1", h.Admin()))
	vm := testVM("60", "web:"+port(be))
	want, err := tgt.Desired(vm)
	if err != nil {
		t.Fatal(err)
	}
	if r := h.Command("add server web/one-60 " + want["lb1/web/one-60"]); r != "New server registered." {
		t.Fatalf("add by hand: %q", r)
	}
	for _, have := range []worker.Objects{want, {"lb1/web/one-60": prefixAdded + want["lb1/web/one-60"]}} {
		h.Command("disable server web/one-60")
		got, err := tgt.Apply(context.Background(), worker.Request{VM: vm, Have: have, Want: want})
		if err != nil || !maps.Equal(got, want) {
			t.Fatalf("apply from %v: %v, %v", have, got, err)
		}
		if c := changing(rec.take()); !equalStrings(c, []string{"enable server web/one-60"}) {
			t.Fatalf("commands %q, want only the enable", c)
		}
		awaitBody(t, h.Frontend["web"], "vm60")
	}
}

func TestUpdateMovesServer(t *testing.T) {
	old := testenv.StartHTTPBackend(t, "old")
	moved := testenv.StartHTTPBackend(t, "new")
	h := testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{{Name: "web"}}})
	tgt, _ := newTarget(t, testConfig("lb1", h.Admin()))
	vm := testVM("70", "web:"+port(old))
	have := mustConverge(t, tgt, vm, nil)
	awaitBody(t, h.Frontend["web"], "old")

	vm.Attributes[DefaultAttribute] = "web:" + port(moved)
	have = mustConverge(t, tgt, vm, have)
	if have["lb1/web/one-70"] != "127.0.0.1:"+port(moved) {
		t.Fatalf("applied %v", have)
	}
	awaitBody(t, h.Frontend["web"], "new")

	// Pending overrides applied after a crash mid-update: the server is at
	// the old address while have already says the new one. Apply moves it.
	h.Command("del server web/one-70")
	h.Command("add server web/one-70 127.0.0.1:" + port(old))
	h.Command("enable server web/one-70")
	if have = mustConverge(t, tgt, vm, have); have["lb1/web/one-70"] != "127.0.0.1:"+port(moved) {
		t.Fatalf("applied after the repair %v", have)
	}
	if s := servers(t, h)["web/one-70"]; s.addrPort() != moved.Addr() || s.Admin != 0 {
		t.Fatalf("server %+v, want enabled at %s", s, moved.Addr())
	}
	awaitBody(t, h.Frontend["web"], "new")
}

// A VM that comes back while its server drains keeps its server.
func TestBackInPoolCancelsDrain(t *testing.T) {
	be := testenv.StartHTTPBackend(t, "vm80")
	h := testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{{Name: "web"}}})
	tgt, rec := newTarget(t, testConfig("lb1", h.Admin()))
	vm := testVM("80", "web:"+port(be))
	have := mustConverge(t, tgt, vm, nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go get(ctx, "http://"+h.Frontend["web"]+"/slow?ms=20000")
	testenv.WaitFor(t, 5e9, "slow request at the backend", func() bool { return be.InFlight() == 1 })
	vm.Kind = eventbus.KindStopping
	have, err := applyOnce(t, tgt, vm, have)
	if !isRequeue(err) {
		t.Fatalf("drain: %v", err)
	}
	vm.Kind = eventbus.KindRunning
	rec.take()
	have = mustConverge(t, tgt, vm, have)
	if c := changing(rec.take()); !equalStrings(c, []string{"set server web/one-80 state ready"}) {
		t.Fatalf("commands %q", c)
	}
	if have["lb1/web/one-80"] != "127.0.0.1:"+port(be) {
		t.Fatalf("applied %v", have)
	}
	awaitBody(t, h.Frontend["web"], "vm80")
}

// A weight change (server.weight in the config) is set in place: no drain,
// no delete, the server keeps serving.
func TestWeightChangeInPlace(t *testing.T) {
	be := testenv.StartHTTPBackend(t, "vm71")
	h := testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{{Name: "web"}}})
	cfg := testConfig("lb1", h.Admin())
	cfg.Server.Weight = 10
	tgt, _ := newTarget(t, cfg)
	vm := testVM("71", "web:"+port(be))
	have := mustConverge(t, tgt, vm, nil)

	cfg.Server.Weight = 20
	reconfigured, rec := newTarget(t, cfg)
	got := mustConverge(t, reconfigured, vm, have)
	if c := changing(rec.take()); !equalStrings(c, []string{"set server web/one-71 weight 20"}) {
		t.Fatalf("commands %q, want only the weight set in place", c)
	}
	if v := got["lb1/web/one-71"]; !strings.Contains(v, "weight 20") {
		t.Fatalf("recorded %q, want weight 20", v)
	}
	if r := h.Command("get weight web/one-71"); !strings.HasPrefix(r, "20 ") {
		t.Fatalf("get weight: %q, want 20", r)
	}
	awaitBody(t, h.Frontend["web"], "vm71")

	for _, tc := range []struct {
		a, b, weight string
		only         bool
	}{
		{"weight 10 check", "weight 20 check", "20", true},
		{"check weight 10", "weight 10 check", "10", false},
		{"weight 10 check", "weight 10 check inter 1s", "10", false},
		{"check", "weight 5 check", "5", true},
		{"weight 5 check", "check", "1", true},
	} {
		if w, ok := weightOnly(tc.a, tc.b); w != tc.weight || ok != tc.only {
			t.Errorf("weightOnly(%q, %q) = %q %v, want %q %v", tc.a, tc.b, w, ok, tc.weight, tc.only)
		}
	}
}
