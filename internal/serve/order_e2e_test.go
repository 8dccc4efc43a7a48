package serve_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// orderSetup is the lb and dns workers of one serve on a real HAProxy and
// a real BIND whose zones hold the VM's name and its PTR (the VM is
// 127.0.0.1, where its HTTP service listens). runtime.teardown_order is
// the default: dns after lb (and monitor, not configured here) on delete.
type orderSetup struct {
	*lbSetup
	b       *testenv.DNS
	cfg     *config.Config
	name    string // the VM's A name
	ptrName string
}

func startOrder(t *testing.T, id int, tune func(*config.Config)) *orderSetup {
	t.Helper()
	return startOrderLog(t, id, nil, tune)
}

// startOrderLog is startOrder with serve's log also written to logs (when
// not nil).
func startOrderLog(t *testing.T, id int, logs *testenv.LogBuffer, tune func(*config.Config)) *orderSetup {
	t.Helper()
	b := testenv.StartDNS(t, testenv.KindBIND, testenv.DNSOptions{Zones: []string{"cloud.test.", "127.in-addr.arpa."}})
	h := testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{{Name: "web"}}})
	be := testenv.StartHTTPBackend(t, "vm"+strconv.Itoa(id))
	cfg := lbConfig(t, h)
	cfg.Workers["dns"] = loadWorker(t, "dns", fmt.Sprintf(`servers: [%q]
tsig: {name: %s, secret_file: %s}
forward_zones: [cloud.test.]
reverse_zones: [127.in-addr.arpa.]
timeout: 1s
`, b.Addr, b.KeyName, b.SecretPath))["dns"]
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.NATS.Embedded.Listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) // the same after a restart
	if tune != nil {
		tune(cfg)
	}
	var in *instance
	if logs != nil {
		in = startLog(t, cfg, zerolog.New(logs).Level(zerolog.DebugLevel).With().Timestamp().Logger())
	} else {
		in = start(t, cfg)
	}
	s := &orderSetup{b: b, cfg: cfg, lbSetup: &lbSetup{h: h, be: be, in: in, vm: lbVM(id, be),
		server: fmt.Sprintf("web/one-%d", id), fronted: "http://" + h.Frontend["web"]}}
	s.name = s.vm.Name + ".cloud.test."
	s.ptrName = "1.0.0.127.in-addr.arpa."
	s.boot(t)
	testenv.WaitFor(t, 20*time.Second, "A and PTR", func() bool { a, ptr := s.hasName(t); return a && ptr })
	return s
}

// hasName reports whether the VM's A and its PTR resolve, each.
func (s *orderSetup) hasName(t *testing.T) (a, ptr bool) {
	return resolves(t, s.b, s.name, mdns.TypeA, "127.0.0.1")(), resolves(t, s.b, s.ptrName, mdns.TypePTR, s.name)()
}

// teardown watches the VM's delete until the server has left HAProxy and
// the name (A and PTR) has left DNS, and returns when each happened. The
// name is looked up before the server's state in each round, so a name
// seen gone while the server is still there is a real inversion, and
// fails the test.
func (s *orderSetup) teardown(t *testing.T, within time.Duration) (serverGone, nameGone time.Time) {
	t.Helper()
	testenv.WaitFor(t, within, "server deleted and name removed", func() bool {
		a, ptr := s.hasName(t)
		present := s.state(t) != ""
		now := time.Now()
		if (!a || !ptr) && present {
			t.Fatalf("name gone (A %v, PTR %v) while %s is still in HAProxy", a, ptr, s.server)
		}
		if !present && serverGone.IsZero() {
			serverGone = now
		}
		if !a && !ptr && nameGone.IsZero() {
			nameGone = now
		}
		return !present && !a && !ptr
	})
	return serverGone, nameGone
}

// dnsWaiting returns the dns worker's recorded wait for the VM, nil if none.
func dnsWaiting(t *testing.T, js jetstream.JetStream, vmKey string) *worker.Waiting {
	t.Helper()
	if rec := workerRecord(t, js, "dns", vmKey); rec != nil {
		return rec.Waiting
	}
	return nil
}

// A VM deleted while a slow request is at it: the request completes with
// 200, the server drains and leaves HAProxy, and only then does the dns
// worker remove the name (A and PTR): it waited, in its registry record,
// for the lb worker's record to settle. The lb worker, which waits for
// nobody, began draining at once.
func TestOrderDeleteNameOutlivesDrain(t *testing.T) {
	s := startOrder(t, 70, nil)
	slow := s.slowRequest(t, 2500)
	t0 := time.Now()
	hook(t, s.in, t.TempDir(), done(s.vm), "done")
	s.awaitDraining(t)
	drainAt := time.Since(t0)
	_, js := s.in.connect(t)
	testenv.WaitFor(t, 10*time.Second, "dns waiting for lb", func() bool { return dnsWaiting(t, js, "one.70") != nil })
	if w := dnsWaiting(t, js, "one.70"); w.Kind != "deleted" || strings.Join(w.For, ",") != "lb" {
		t.Fatalf("dns waits %+v, want deleted, for lb", w)
	}

	serverGone, nameGone := s.teardown(t, 30*time.Second)
	r := <-slow
	if r.code != http.StatusOK || r.body != s.be.Name+" slow" {
		t.Fatalf("slow request through the draining server: %d %q", r.code, r.body)
	}
	if r.at.After(serverGone) {
		t.Fatalf("server deleted %s before the slow request was answered", r.at.Sub(serverGone))
	}
	if nameGone.Before(serverGone) {
		t.Fatalf("name gone %s before the server", serverGone.Sub(nameGone))
	}
	t.Logf("delete: drain began %s after the hook; request answered, server deleted %s later, name removed %s after that",
		drainAt.Round(time.Millisecond), serverGone.Sub(r.at).Round(time.Millisecond), nameGone.Sub(serverGone).Round(time.Millisecond))
	awaitMetrics(t, s.in, `vmglue_worker_teardown_timeouts_total{after="lb",worker="dns"} 0`,
		`vmglue_worker_teardown_waits_total{worker="lb"} 0`)
}

// serve stops while the dns worker waits for the lb drain and starts again
// on the same bus (an external NATS, as in production: the events serve
// held come back at once, not after the ack wait an embedded server
// restarted with serve would take): the order holds (it lives in the
// registries), and the wait keeps its recorded start.
func TestOrderSurvivesServeRestart(t *testing.T) {
	srv := natstest.Start(t)
	s := startOrder(t, 71, func(cfg *config.Config) { cfg.NATS.URL = srv.URL })
	_, js := natstest.Connect(t, srv.URL)
	slow := s.slowRequest(t, 6000)
	hook(t, s.in, t.TempDir(), done(s.vm), "done")
	s.awaitDraining(t)
	var waiting *worker.Waiting
	testenv.WaitFor(t, 10*time.Second, "dns waiting for lb", func() bool { waiting = dnsWaiting(t, js, "one.71"); return waiting != nil })

	stopAt := time.Now()
	s.in.stop()
	t.Logf("serve stopped in %s", time.Since(stopAt).Round(time.Microsecond))
	if a, ptr := s.hasName(t); !a || !ptr || s.state(t) == "" {
		t.Fatalf("after serve stopped: A %v, PTR %v, server %q: want all still there", a, ptr, s.state(t))
	}
	if s.be.InFlight() != 1 {
		t.Fatal("the slow request is no longer at the VM: the restart proves nothing")
	}
	s.in = start(t, s.cfg)
	// The restarted dns worker has looked at the VM (and waits again):
	// from the start recorded before the restart.
	awaitMetrics(t, s.in, `vmglue_worker_teardown_waits_total{worker="dns"} 1`)
	if w := dnsWaiting(t, js, "one.71"); w == nil || !w.Since.Equal(waiting.Since) {
		t.Fatalf("dns wait after the restart %+v, want the one recorded before (%s)", w, waiting.Since)
	}
	serverGone, nameGone := s.teardown(t, 40*time.Second)
	if r := <-slow; r.code != http.StatusOK {
		t.Fatalf("slow request across the restart: %d %q", r.code, r.body)
	}
	if nameGone.Before(serverGone) {
		t.Fatalf("name gone %s before the server", serverGone.Sub(nameGone))
	}
	testenv.WaitFor(t, 10*time.Second, "dns record without a wait after its delete", func() bool { return dnsWaiting(t, js, "one.71") == nil })
	t.Logf("across a serve restart: name removed %s after the server left", nameGone.Sub(serverGone).Round(time.Millisecond))
}

// The lb worker cannot finish (its HAProxy is down; it dead-letters the
// delete after max_deliver attempts): the dns worker waits teardown_wait,
// then removes the name anyway, says so in one warning naming the VM and
// lb, and counts it.
func TestOrderLimitWhenLBCannotFinish(t *testing.T) {
	const limit = 3 * time.Second
	logs := &testenv.LogBuffer{}
	s := startOrderLog(t, 72, logs, func(cfg *config.Config) {
		cfg.Runtime.TeardownWait = limit
		cfg.Runtime.MaxDeliver = 2
	})
	s.h.Stop()
	t0 := time.Now()
	hook(t, s.in, t.TempDir(), done(s.vm), "done")
	testenv.WaitFor(t, 30*time.Second, "name removed", func() bool { a, ptr := s.hasName(t); return !a && !ptr })
	if d := time.Since(t0); d < limit {
		t.Fatalf("name removed %s after the hook, before teardown_wait %s", d, limit)
	}
	t.Logf("name removed %s after the hook (teardown_wait %s)", time.Since(t0).Round(time.Millisecond), limit)
	awaitMetrics(t, s.in, `vmglue_worker_teardown_timeouts_total{after="lb",worker="dns"} 1`)
	_, js := s.in.connect(t)
	testenv.WaitFor(t, 20*time.Second, "lb dead letter", func() bool {
		for _, d := range deadLetters(t, js) {
			if d.Worker == "lb" {
				return true
			}
		}
		return false
	})
	var warns []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `"level":"warn"`) && strings.Contains(l, "teardown order") {
			warns = append(warns, l)
		}
	}
	if len(warns) != 1 || !strings.Contains(warns[0], `"vm":"72"`) || !strings.Contains(warns[0], `"worker":"dns"`) ||
		!strings.Contains(warns[0], `"after":["lb"]`) {
		t.Fatalf("teardown order warnings %q, want one naming vm 72, worker dns, after lb", warns)
	}
}

// Without the lb worker in the configuration the dns worker does not wait
// at all: nothing waits for a worker that does not run.
func TestOrderDependencyNotConfiguredDoesNotWait(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	cfg := dnsConfig(t, b, "")
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Runtime.TeardownWait = time.Hour // a wait would time the test out
	in := start(t, cfg)
	v := running(73, "alone", "10.3.0.73", "", time.Now().Unix())
	hook(t, in, t.TempDir(), v, "running")
	testenv.WaitFor(t, 20*time.Second, "A record", resolves(t, b, "alone.cloud.test.", mdns.TypeA, "10.3.0.73"))
	hook(t, in, t.TempDir(), done(v), "done")
	testenv.WaitFor(t, 20*time.Second, "A record removed", gone(t, b, "alone.cloud.test.", mdns.TypeA))
	awaitMetrics(t, in, `vmglue_worker_teardown_waits_total{worker="dns"} 0`)
}
