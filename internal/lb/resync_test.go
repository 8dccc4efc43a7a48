package lb

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

func TestResyncAfterReload(t *testing.T) {
	be := testenv.StartHTTPBackend(t, "vm20")
	h := testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{{Name: "web"}}})
	cfg := testConfig("lb1", h.Admin())
	cfg.Server = ServerOptions{Check: true, Inter: 100 * time.Millisecond, Rise: 1}
	tgt, rec := newTarget(t, cfg)
	vm := testVM("20", "web:"+port(be))
	have := mustConverge(t, tgt, vm, nil)
	awaitBody(t, h.Frontend["web"], "vm20")

	h.Reload()
	if _, ok := servers(t, h)["web/one-20"]; ok {
		t.Fatal("dynamic server survived the reload")
	}
	if code, _ := get(context.Background(), "http://"+h.Frontend["web"]+"/"); code != 503 {
		t.Fatalf("after reload: %d, want 503", code)
	}

	// A fresh Target (a restarted vmglue) works from the registry alone.
	fresh, rec2 := newTarget(t, cfg)
	applied := map[string]worker.Objects{vm.Key(): have, "one.99": {}}
	if err := fresh.Resync(context.Background(), applied); err != nil {
		t.Fatalf("resync: %v", err)
	}
	s, ok := servers(t, h)["web/one-20"]
	if !ok || s.Admin != 0 || s.Check&checkEnabled == 0 {
		t.Fatalf("after resync: %+v (present %v), want enabled with checks", s, ok)
	}
	awaitBody(t, h.Frontend["web"], "vm20")

	// Nothing to do now: only reads.
	rec2.take()
	if err := fresh.Resync(context.Background(), applied); err != nil {
		t.Fatalf("second resync: %v", err)
	}
	if c := changing(rec2.take()); len(c) != 0 {
		t.Fatalf("second resync changed state: %q", c)
	}

	// The Target that removed the VM never re-adds it from a stale registry.
	vm.Kind = eventbus.KindDeleted
	if got := mustConverge(t, tgt, vm, have); len(got) != 0 {
		t.Fatalf("applied after delete: %v", got)
	}
	rec.take()
	if err := tgt.Resync(context.Background(), applied); err != nil {
		t.Fatalf("stale resync: %v", err)
	}
	if c := changing(rec.take()); len(c) != 0 {
		t.Fatalf("resync from a stale registry changed state: %q", c)
	}
}

func TestStaticServerConflict(t *testing.T) {
	be := testenv.StartHTTPBackend(t, "static")
	h := testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{
		{Name: "web", Servers: []string{"one-30 " + be.Addr()}}}})
	tgt, rec := newTarget(t, testConfig("lb1", h.Admin()))
	before := servers(t, h)["web/one-30"]

	vm := testVM("30", "web:8080")
	got, err := applyOnce(t, tgt, vm, nil)
	if !isPermanentConflict(err) {
		t.Fatalf("add over a static server: %v, want a permanent conflict", err)
	}
	if len(got) != 0 {
		t.Fatalf("applied %v, want nothing", got)
	}
	// Deleting the VM never drains the static server either.
	vm.Kind = eventbus.KindDeleted
	if got, err := applyOnce(t, tgt, vm, got); err != nil || len(got) != 0 {
		t.Fatalf("delete: %v, %v", got, err)
	}
	if c := changing(rec.take()); len(c) != 0 {
		t.Fatalf("commands sent: %q", c)
	}
	after := servers(t, h)["web/one-30"]
	if after.Admin != before.Admin || after.addrPort() != be.Addr() {
		t.Fatalf("static server changed: %+v → %+v", before, after)
	}
	awaitBody(t, h.Frontend["web"], "static")

	// A server added by hand between the state read and the add: still a conflict.
	h.Command("add server web/one-31 127.0.0.1:9")
	k := objectKey{"lb1", "web", "one-31"}
	_, err = tgt.add(context.Background(), tgt.clients["lb1"], k, spec{Addr: mustAddrPort("127.0.0.1:8080")}, false)
	if !isPermanentConflict(err) {
		t.Fatalf("add over a hand-made server: %v", err)
	}
}

func TestInvalidInputSendsNothing(t *testing.T) {
	h := testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{{Name: "web"}}})
	tests := []struct {
		name   string
		edit   func(vm *eventbus.VM)
		config func(c *Config)
		want   worker.Objects // forged want for Apply; nil: use Desired's error
	}{
		{name: "ip out of range", edit: func(vm *eventbus.VM) { vm.NICs[0].IP = "10.0.0.999" }},
		{name: "hostname as ip", edit: func(vm *eventbus.VM) { vm.NICs[0].IP = "vm42.cloud.test" }},
		{name: "no nic", edit: func(vm *eventbus.VM) { vm.NICs = nil }},
		{name: "bad backend", edit: func(vm *eventbus.VM) { vm.Attributes[DefaultAttribute] = "web/x:80" }},
		{name: "port out of range", edit: func(vm *eventbus.VM) { vm.Attributes[DefaultAttribute] = "web:99999" }},
		{name: "no port", edit: func(vm *eventbus.VM) { vm.Attributes[DefaultAttribute] = "web" }},
		{name: "backend twice", edit: func(vm *eventbus.VM) { vm.Attributes[DefaultAttribute] = "web:80,web:81" }},
		{name: "name with space", edit: func(vm *eventbus.VM) { vm.Name = "web 1" },
			config: func(c *Config) { c.ServerName = "<name>" }},
		{name: "name too long", edit: func(vm *eventbus.VM) { vm.Name = strings.Repeat("a", MaxServerName+1) },
			config: func(c *Config) { c.ServerName = "<name>" }},
		// The characters HAProxy 2.6 refuses in a server name ("character
		// '/' is not permitted in server name").
		{name: "name with slash", edit: func(vm *eventbus.VM) { vm.Name = "vm/42" },
			config: func(c *Config) { c.ServerName = "<name>" }},
		{name: "name with at", edit: func(vm *eventbus.VM) { vm.Name = "vm@42" },
			config: func(c *Config) { c.ServerName = "<name>" }},
		{name: "name with hash", edit: func(vm *eventbus.VM) { vm.Name = "vm#42" },
			config: func(c *Config) { c.ServerName = "<name>" }},
		{name: "name with percent", edit: func(vm *eventbus.VM) { vm.Name = "vm%42" },
			config: func(c *Config) { c.ServerName = "<name>" }},
		{name: "name with accent", edit: func(vm *eventbus.VM) { vm.Name = "vmé42" },
			config: func(c *Config) { c.ServerName = "<name>" }},
		{name: "name with semicolon", edit: func(vm *eventbus.VM) { vm.Name = "vm;del" },
			config: func(c *Config) { c.ServerName = "<name>" }},
		{name: "forged invalid address", want: worker.Objects{"lb1/web/one-40": "10.0.0.999:80"}},
		{name: "forged command injection", want: worker.Objects{"lb1/web/one-40": "127.0.0.1:80 weight 1;del server web/x"}},
		{name: "forged bad name", want: worker.Objects{"lb1/web/one 40": "127.0.0.1:80"}},
		{name: "unknown backend", want: worker.Objects{"lb1/nosuch/one-40": "127.0.0.1:80"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig("lb1", h.Admin())
			if tc.config != nil {
				tc.config(&cfg)
			}
			tgt, rec := newTarget(t, cfg)
			vm := testVM("40", "web:8080")
			if tc.edit != nil {
				tc.edit(vm)
			}
			var err error
			if tc.want == nil {
				_, err = applyOnce(t, tgt, vm, nil)
			} else {
				var got worker.Objects
				got, err = tgt.Apply(context.Background(), worker.Request{VM: vm, Want: tc.want})
				if len(got) != 0 {
					t.Errorf("applied %v", got)
				}
			}
			if !worker.IsPermanent(err) {
				t.Fatalf("error %v, want permanent", err)
			}
			if tc.want == nil {
				// Refused by Desired: not even a read reached HAProxy.
				if c := rec.take(); len(c) != 0 {
					t.Fatalf("commands sent: %q", c)
				}
			}
			for _, c := range changing(rec.take()) {
				if !strings.HasPrefix(c, "add server web/nosuch") && !strings.HasPrefix(c, "add server nosuch/") {
					t.Fatalf("command sent: %q", c)
				}
			}
			if len(servers(t, h)) != 0 {
				t.Fatalf("servers: %v", servers(t, h))
			}
		})
	}
}

func TestTwoInstancesOneDown(t *testing.T) {
	be := testenv.StartHTTPBackend(t, "vm50")
	opts := testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{{Name: "web"}}}
	h1, h2 := testenv.StartHAProxy(t, opts), testenv.StartHAProxy(t, opts)
	cfg := testConfig("lb1", h1.Admin(), "lb2", h2.Admin())
	tgt, _ := newTarget(t, cfg)
	vm := testVM("50", "web:"+port(be))
	want, err := tgt.Desired(vm)
	if err != nil {
		t.Fatal(err)
	}

	h2.Stop()
	got, err := applyOnce(t, tgt, vm, nil)
	if err == nil || worker.IsPermanent(err) || isRequeue(err) || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("with lb2 down: %v, want a transient error", err)
	}
	// lb2's server is recorded as wanted, not as in place: Resync adds it.
	if len(got) != 2 || got["lb1/web/one-50"] != want["lb1/web/one-50"] ||
		got["lb2/web/one-50"] != prefixWanted+want["lb2/web/one-50"] {
		t.Fatalf("applied %v, want lb1 in place and lb2 wanted", got)
	}
	awaitBody(t, h1.Frontend["web"], "vm50")
	metric(t, tgt.metrics.up.WithLabelValues("lb1"), 1)
	metric(t, tgt.metrics.up.WithLabelValues("lb2"), 0)

	// lb2 back after the event ran out of retries: a Resync of a fresh
	// Target (the registry alone) adds the server.
	h2.Start()
	fresh, _ := newTarget(t, cfg)
	if err := fresh.Resync(context.Background(), map[string]worker.Objects{vm.Key(): got}); err != nil {
		t.Fatalf("resync: %v", err)
	}
	awaitBody(t, h2.Frontend["web"], "vm50")
	metric(t, fresh.metrics.up.WithLabelValues("lb2"), 1)
	metric(t, fresh.metrics.added.WithLabelValues("lb2"), 1)

	// The next converge finds it in place and records it as such.
	got = mustConverge(t, tgt, vm, got)
	if !maps.Equal(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
}

// WatchReloads reports each instance when it first answers, and again
// after a reload (worker Pid change), long before any resync interval.
func TestWatchReloadsDetectsReload(t *testing.T) {
	be := testenv.StartHTTPBackend(t, "vm21")
	h := testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{{Name: "web"}}})
	cfg := testConfig("lb1", h.Admin())
	cfg.ResyncInterval = time.Hour
	tgt, _ := newTarget(t, cfg)
	vm := testVM("21", "web:"+port(be))
	have := mustConverge(t, tgt, vm, nil)

	reloads := make(chan string, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tgt.WatchReloads(ctx, func(instance string) { reloads <- instance })
	}()
	defer func() { cancel(); <-done }()
	next := func(what string) {
		t.Helper()
		select {
		case in := <-reloads:
			if in != "lb1" {
				t.Fatalf("%s: instance %q", what, in)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not reported", what)
		}
	}
	next("first answer")
	metric(t, tgt.metrics.reloads.WithLabelValues("lb1"), 0) // a first answer is no reload
	h.Reload()
	next("reload")
	metric(t, tgt.metrics.reloads.WithLabelValues("lb1"), 1)
	if err := tgt.Resync(context.Background(), map[string]worker.Objects{vm.Key(): have}); err != nil {
		t.Fatal(err)
	}
	awaitBody(t, h.Frontend["web"], "vm21")
}
