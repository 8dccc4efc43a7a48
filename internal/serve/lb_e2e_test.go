package serve_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/lb"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// lbResync is the resync interval of the lb worker in these tests: long,
// so that a server back after a reload proves the reload watcher.
const lbResync = time.Hour

// lbSetup is a real HAProxy with backend "web" behind its own frontend, a
// real HTTP service on loopback standing in for the VM's, and `vmglue
// serve` running the lb worker on that HAProxy.
type lbSetup struct {
	h       *testenv.HAProxy
	be      *testenv.HTTPBackend
	in      *instance
	vm      testenv.OneVM
	server  string // "web/one-<id>"
	fronted string // "http://<frontend>"
}

func startLB(t *testing.T, id int) *lbSetup {
	t.Helper()
	return startLBDNS(t, id, nil)
}

// startLBDNS is startLB with the dns worker too when b is not nil, on b.
func startLBDNS(t *testing.T, id int, b *testenv.DNS) *lbSetup {
	t.Helper()
	return startLBConfig(t, id, func(cfg *config.Config) {
		if b != nil {
			cfg.Workers["dns"] = loadWorker(t, "dns", dnsWorkerYAML(b, "", "1s"))["dns"]
		}
	})
}

// startLBConfig is startLB with edit applied to serve's configuration.
func startLBConfig(t *testing.T, id int, edit func(*config.Config)) *lbSetup {
	t.Helper()
	h := testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{{Name: "web"}}})
	be := testenv.StartHTTPBackend(t, "vm"+strconv.Itoa(id))
	cfg := lbConfig(t, h)
	edit(cfg)
	cfg.Metrics.Listen = "127.0.0.1:0"
	in := start(t, cfg)
	return &lbSetup{h: h, be: be, in: in, vm: lbVM(id, be), server: fmt.Sprintf("web/one-%d", id),
		fronted: "http://" + h.Frontend["web"]}
}

// lbVM is a running VM on 127.0.0.1 in backend web, on be's port.
func lbVM(id int, be *testenv.HTTPBackend) testenv.OneVM {
	v := running(id, "web"+strconv.Itoa(id), "127.0.0.1", "", time.Now().Unix())
	v.UserAttr = map[string]string{"LB_BACKENDS": "web:" + strconv.Itoa(be.Port)}
	return v
}

// bootDeadLettered runs v's RUNNING hook and waits for a dead letter.
func bootDeadLettered(t *testing.T, in *instance, js jetstream.JetStream, v testenv.OneVM) []worker.DeadLetter {
	t.Helper()
	hook(t, in, t.TempDir(), v, "running")
	var dl []worker.DeadLetter
	testenv.WaitFor(t, 20*time.Second, "dead letter", func() bool { dl = deadLetters(t, js); return len(dl) > 0 })
	return dl
}

// lbConfig points the lb worker at hs (instances lb1, lb2, ...), in the
// YAML shape of internal/lb/README.md.
func lbConfig(t *testing.T, hs ...*testenv.HAProxy) *config.Config {
	t.Helper()
	cfg := baseConfig(t)
	var instances strings.Builder
	for i, h := range hs {
		fmt.Fprintf(&instances, "  - name: lb%d\n    address: %s\n", i+1, h.Admin())
	}
	raw := fmt.Sprintf(`instances:
%sattribute: LB_BACKENDS
allow:
  - backends: [web]
    ports: ["1024-65535"]
server_name: "<cloud>-<vmid>"
server:
  weight: 10
  check: true
  inter: 500ms
  rise: 2
  fall: 3
in_pool_kinds: [running]
drain_timeout: 20s
drain_poll: 50ms
resync_interval: %s
command_timeout: 2s
`, instances.String(), lbResync)
	cfg.Workers = loadWorker(t, "lb", raw)
	return cfg
}

// get requests url on a fresh connection: status and body, 0 and the error
// text when the request failed.
func get(ctx context.Context, url string) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	r, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return 0, err.Error()
	}
	return r.StatusCode, string(b)
}

// serves reports whether a request through the frontend reaches the VM.
func (s *lbSetup) serves() bool {
	code, body := get(context.Background(), s.fronted+"/")
	return code == http.StatusOK && body == s.be.Name
}

// state returns the server's line of "show servers state", "" if absent.
func (s *lbSetup) state(t *testing.T) string {
	t.Helper()
	return s.stateOf(t, s.server)
}

// boot runs the VM's RUNNING hook and returns how long it took from the
// start of the hook until the first 200 through the frontend.
func (s *lbSetup) boot(t *testing.T) time.Duration {
	t.Helper()
	t0 := time.Now()
	hook(t, s.in, t.TempDir(), s.vm, "running")
	hookDone := time.Since(t0)
	testenv.WaitFor(t, 10*time.Second, "200 through the frontend", s.serves)
	d := time.Since(t0)
	t.Logf("RUNNING hook → first 200 through HAProxy: %s (hook process %s)", d.Round(time.Millisecond), hookDone.Round(time.Millisecond))
	return d
}

// A VM boots with LB_BACKENDS: its RUNNING hook puts it into the pool and
// traffic through HAProxy reaches it within a second. HAProxy reloaded
// forgets the dynamic server: serve notices the reload (worker Pid) and
// resyncs at once, long before the resync interval (an hour here).
func TestLBHookToTraffic(t *testing.T) {
	s := startLB(t, 42)
	if s.serves() {
		t.Fatal("the frontend serves before the VM booted")
	}
	s.boot(t) // logs hook → first 200 (target < 1s: a figure, not a timed assertion)
	if st := s.state(t); !strings.Contains(st, " 127.0.0.1 ") || !strings.HasSuffix(strings.Fields(st)[18], strconv.Itoa(s.be.Port)) {
		t.Fatalf("server state %q, want 127.0.0.1:%d", st, s.be.Port)
	}

	s.h.Reload()
	reloaded := time.Now()
	if st := s.state(t); st != "" {
		t.Fatalf("server survived the reload (%q): the test proves nothing", st)
	}
	// The watcher asks every lb.ReloadCheck, the resync interval is an
	// hour: back at all proves the watcher (the time is logged: about one
	// ReloadCheck; a deadline here would only measure the machine's load).
	testenv.WaitFor(t, 15*time.Second, "server re-added after the reload", s.serves)
	t.Logf("HAProxy reload → server back and serving: %s (reload check %s, resync interval %s)",
		time.Since(reloaded).Round(time.Millisecond), lb.ReloadCheck, lbResync)
	awaitMetrics(t, s.in, `vmglue_lb_instance_up{haproxy="lb1"} 1`, `vmglue_lb_reloads_total{haproxy="lb1"} 1`,
		`vmglue_lb_servers_added_total{haproxy="lb1"} 2`)
}

// A slow request in flight when the VM's DONE hook runs completes with 200:
// the server drains and is deleted only afterwards.
func TestLBDoneDrains(t *testing.T) {
	s := startLB(t, 43)
	s.boot(t)
	s.drainsSlowRequest(t, done(s.vm), "done")
}

// A VM shutting down (the hook of LCM state SHUTDOWN, kind stopping) leaves
// its pools before it is off: a slow request in flight completes with 200,
// the server drains and is deleted. The dns worker keeps the VM's name
// during the drain and after it: stopping is among its present kinds.
func TestLBShutdownDrainsDNSStays(t *testing.T) {
	b := testenv.StartDNS(t, testenv.KindBIND, testenv.DNSOptions{})
	s := startLBDNS(t, 44, b)
	s.boot(t)
	name := s.vm.Name + ".cloud.test."
	hasName := resolves(t, b, name, mdns.TypeA, "127.0.0.1")
	testenv.WaitFor(t, 20*time.Second, "A record", hasName)

	// oned changes no timestamp on entering SHUTDOWN: the hook's later run
	// (Version.Seen) is what makes this snapshot the newer one.
	shutdown := s.vm
	shutdown.LCM = 12 // ACTIVE/SHUTDOWN
	s.drainsSlowRequest(t, shutdown, "stopping")

	_, js := s.in.connect(t)
	idle(t, js, "dns") // the dns worker has converged the stopping VM
	if !hasName() {
		t.Fatalf("%s no longer resolves after the drain of a VM shutting down", name)
	}
	if snap := snapshot(t, js, "one.44"); snap.Kind != eventbus.KindStopping {
		t.Fatalf("snapshot kind %q, want stopping", snap.Kind)
	}
}

// drainsSlowRequest starts a slow request through the frontend, runs the
// hook of v (the VM leaving its pools) while the request is at the VM,
// and checks that the server drains, takes no new request, keeps serving
// the slow one to its 200 and is deleted only then.
func (s *lbSetup) drainsSlowRequest(t *testing.T, v testenv.OneVM, word string) {
	t.Helper()
	slow := s.slowRequest(t, 2000)
	hook(t, s.in, t.TempDir(), v, word)
	s.awaitDraining(t)

	// While the slow request runs the server stays; once it is answered
	// the server goes.
	var r slowResult
	testenv.WaitFor(t, 10*time.Second, "slow request answered, server kept meanwhile", func() bool {
		select {
		case r = <-slow:
			return true
		default:
		}
		if s.state(t) == "" && s.be.InFlight() > 0 {
			t.Fatal("server deleted while a request was in flight")
		}
		return false
	})
	if r.code != http.StatusOK || r.body != s.be.Name+" slow" {
		t.Fatalf("slow request through the draining server: %d %q", r.code, r.body)
	}
	testenv.WaitFor(t, 10*time.Second, "server deleted", func() bool { return s.state(t) == "" })
	t.Logf("%s hook: server deleted %s after the slow request was answered", word, time.Since(r.at).Round(time.Millisecond))
}

// slowResult is the outcome of a slow request and when it came.
type slowResult struct {
	code int
	body string
	at   time.Time
}

// slowRequest starts a request through the frontend that the VM answers
// after ms milliseconds, and returns once it is at the VM.
func (s *lbSetup) slowRequest(t *testing.T, ms int) <-chan slowResult {
	t.Helper()
	slow := make(chan slowResult, 1)
	go func() {
		code, body := get(context.Background(), s.fronted+"/slow?ms="+strconv.Itoa(ms))
		slow <- slowResult{code, body, time.Now()}
	}()
	testenv.WaitFor(t, 5*time.Second, "slow request at the VM", func() bool { return s.be.InFlight() == 1 })
	return slow
}

// awaitDraining waits until the server is in forced drain, and checks that
// a new request no longer reaches it.
func (s *lbSetup) awaitDraining(t *testing.T) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, "server draining", func() bool {
		f := strings.Fields(s.state(t))
		if len(f) < 7 {
			return false
		}
		admin, err := strconv.Atoi(f[6]) // srv_admin_state; 0x08: forced drain
		return err == nil && admin&0x08 != 0
	})
	if s.serves() {
		t.Error("a new request reached the draining server")
	}
}

// A static server of haproxy.cfg has the name vmglue would give the VM's:
// the event is dead-lettered with reason conflict and the static server
// keeps its state, address and weight.
func TestLBStaticServerConflictDeadLettered(t *testing.T) {
	static := testenv.StartHTTPBackend(t, "static")
	vmBackend := testenv.StartHTTPBackend(t, "vm44")
	h := testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{
		{Name: "web", Servers: []string{"one-44 " + static.Addr() + " weight 7"}}}})
	s := &lbSetup{h: h, be: static, server: "web/one-44", fronted: "http://" + h.Frontend["web"]}
	before := s.state(t)
	if before == "" {
		t.Fatal("static server missing")
	}
	in := start(t, lbConfig(t, h))
	_, js := in.connect(t)
	dl := bootDeadLettered(t, in, js, lbVM(44, vmBackend))
	if dl[0].Worker != "lb" || dl[0].Reason != worker.ReasonConflict || !strings.Contains(dl[0].Error, "web/one-44") {
		t.Fatalf("dead letter %+v", dl[0])
	}
	idle(t, js, "lb")
	after := s.state(t)
	// be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight ... srv_port
	b, a := strings.Fields(before), strings.Fields(after)
	for _, i := range []int{4, 6, 7, 18} {
		if len(a) <= 18 || a[i] != b[i] {
			t.Fatalf("static server changed:\n%s\n%s", before, after)
		}
	}
	if b[7] != "7" {
		t.Fatalf("static server weight %s, want 7 (the test proves nothing)", b[7])
	}
	testenv.WaitFor(t, 5*time.Second, "the static server serves", s.serves)
}

// lb2 is down past the retry budget: the event is dead-lettered after
// max_deliver attempts with lb1 converged. When lb2 starts, serve's reload
// watcher resyncs and the server recorded as wanted on lb2 is added: lb2
// converges without any new event.
func TestLBInstanceDownPastRetries(t *testing.T) {
	opts := testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{{Name: "web"}}}
	h1, h2 := testenv.StartHAProxy(t, opts), testenv.StartHAProxy(t, opts)
	be := testenv.StartHTTPBackend(t, "vm45")
	h2.Stop()
	cfg := lbConfig(t, h1, h2)
	cfg.Runtime.MaxDeliver = 2
	in := start(t, cfg)
	_, js := in.connect(t)
	dl := bootDeadLettered(t, in, js, lbVM(45, be))
	if dl[0].Worker != "lb" || dl[0].Reason != worker.ReasonMaxDeliveries || dl[0].Deliveries != 2 {
		t.Fatalf("dead letter %+v, want max deliveries after 2", dl[0])
	}
	idle(t, js, "lb")
	serves := func(h *testenv.HAProxy) func() bool {
		return func() bool {
			code, body := get(context.Background(), "http://"+h.Frontend["web"]+"/")
			return code == http.StatusOK && body == be.Name
		}
	}
	testenv.WaitFor(t, 5*time.Second, "lb1 serves", serves(h1))
	rec := lbRecord(t, js, "one.45")
	if got := rec.Applied["lb2/web/one-45"]; !strings.HasPrefix(got, "wanted ") {
		t.Fatalf("lb2 recorded %q, want wanted ...", got)
	}

	h2.Start()
	started := time.Now()
	testenv.WaitFor(t, 10*time.Second, "lb2 serves after it started", serves(h2))
	t.Logf("lb2 started → server added and serving: %s", time.Since(started).Round(time.Millisecond))
	if n := len(deadLetters(t, js)); n != 1 {
		t.Fatalf("%d dead letters, want 1", n)
	}
}

// lbRecord returns the lb worker's registry record of a VM.
func lbRecord(t *testing.T, js jetstream.JetStream, vmKey string) *worker.Record {
	t.Helper()
	rec := workerRecord(t, js, "lb", vmKey)
	if rec == nil {
		t.Fatalf("no lb record of %s", vmKey)
	}
	return rec
}

// workerRecord returns a worker's registry record of a VM, nil if none.
func workerRecord(t *testing.T, js jetstream.JetStream, workerName, vmKey string) *worker.Record {
	t.Helper()
	reg, err := worker.OpenRegistry(context.Background(), js, workerName)
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := reg.Get(context.Background(), vmKey)
	if err != nil {
		t.Fatalf("%s record of %s: %v", workerName, vmKey, err)
	}
	return rec
}

// stateOf returns the "show servers state" line of server "backend/name",
// "" if absent.
func (s *lbSetup) stateOf(t *testing.T, server string) string {
	t.Helper()
	be, name, _ := strings.Cut(server, "/")
	for _, l := range strings.Split(s.h.Command("show servers state "+be), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[1] == be && f[3] == name {
			return l
		}
	}
	return ""
}

// A tenant's LB_BACKENDS naming a backend no lb.allow rule opens
// (prod_payments) is refused: dead-lettered with the reason, and nothing
// reaches that backend.
func TestLBBackendNotAllowedDeadLettered(t *testing.T) {
	vmBackend := testenv.StartHTTPBackend(t, "vm45")
	h := testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{
		{Name: "web"}, {Name: "prod_payments"}}})
	in := start(t, lbConfig(t, h))
	_, js := in.connect(t)
	v := lbVM(45, vmBackend)
	v.UserAttr = map[string]string{"LB_BACKENDS": "prod_payments:443"}
	dl := bootDeadLettered(t, in, js, v)
	if dl[0].Worker != "lb" || dl[0].Reason != worker.ReasonPermanent ||
		!strings.Contains(dl[0].Error, "prod_payments:443") || !strings.Contains(dl[0].Error, lb.ErrNotAllowed.Error()) {
		t.Fatalf("dead letter %+v, want permanent naming prod_payments:443 and %q", dl[0], lb.ErrNotAllowed)
	}
	idle(t, js, "lb")
	if st := h.Command("show servers state prod_payments"); strings.Contains(st, "one-45") {
		t.Fatalf("prod_payments got the VM's server:\n%s", st)
	}
}

// snapshot returns the newest snapshot serve recorded for vmKey.
func snapshot(t *testing.T, js jetstream.JetStream, vmKey string) *eventbus.VM {
	t.Helper()
	snaps, err := worker.OpenSnapshots(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	snap, _, err := snaps.Get(context.Background(), vmKey)
	if err != nil || snap == nil {
		t.Fatalf("snapshot of %s: %v", vmKey, err)
	}
	return snap
}
