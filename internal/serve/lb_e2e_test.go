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

	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/testenv"
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
	h := testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{{Name: "web"}}})
	be := testenv.StartHTTPBackend(t, "vm"+strconv.Itoa(id))
	in := start(t, lbConfig(t, h))
	v := running(id, "web"+strconv.Itoa(id), "127.0.0.1", "", time.Now().Unix())
	v.UserAttr = map[string]string{"LB_BACKENDS": "web:" + strconv.Itoa(be.Port)}
	return &lbSetup{h: h, be: be, in: in, vm: v, server: fmt.Sprintf("web/one-%d", id),
		fronted: "http://" + h.Frontend["web"]}
}

// lbConfig points the lb worker at h, in the YAML shape of internal/lb/README.md.
func lbConfig(t *testing.T, h *testenv.HAProxy) *config.Config {
	t.Helper()
	cfg := baseConfig(t)
	raw := fmt.Sprintf(`instances:
  - name: lb1
    address: %s
attribute: LB_BACKENDS
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
`, h.Admin(), lbResync)
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
	be, name, _ := strings.Cut(s.server, "/")
	for _, l := range strings.Split(s.h.Command("show servers state "+be), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[1] == be && f[3] == name {
			return l
		}
	}
	return ""
}

// boot runs the VM's RUNNING hook and returns how long it took from the
// start of the hook until the first 200 through the frontend.
func (s *lbSetup) boot(t *testing.T) time.Duration {
	t.Helper()
	t0 := time.Now()
	hook(t, s.in.Info.NATSURL, t.TempDir(), s.vm, "running")
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
	if d := s.boot(t); d > time.Second {
		t.Errorf("hook → traffic took %s, target < 1s", d)
	}
	if st := s.state(t); !strings.Contains(st, " 127.0.0.1 ") || !strings.HasSuffix(strings.Fields(st)[18], strconv.Itoa(s.be.Port)) {
		t.Fatalf("server state %q, want 127.0.0.1:%d", st, s.be.Port)
	}

	s.h.Reload()
	reloaded := time.Now()
	if st := s.state(t); st != "" {
		t.Fatalf("server survived the reload (%q): the test proves nothing", st)
	}
	testenv.WaitFor(t, 10*time.Second, "server re-added after the reload", s.serves)
	t.Logf("HAProxy reload → server back and serving: %s (resync interval %s)", time.Since(reloaded).Round(time.Millisecond), lbResync)
}

// A slow request in flight when the VM's DONE hook runs completes with 200:
// the server drains and is deleted only afterwards.
func TestLBDoneDrains(t *testing.T) {
	s := startLB(t, 43)
	s.boot(t)

	type result struct {
		code int
		body string
		at   time.Time
	}
	slow := make(chan result, 1)
	go func() {
		code, body := get(context.Background(), s.fronted+"/slow?ms=2000")
		slow <- result{code, body, time.Now()}
	}()
	testenv.WaitFor(t, 5*time.Second, "slow request at the VM", func() bool { return s.be.InFlight() == 1 })

	hook(t, s.in.Info.NATSURL, t.TempDir(), done(s.vm), "done")
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

	// While the slow request runs the server stays; once it is answered
	// the server goes.
	var r result
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
	t.Logf("server deleted %s after the slow request was answered", time.Since(r.at).Round(time.Millisecond))
}
