package lb

import (
	"context"
	"errors"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// testConfig returns a configuration for the instances given as name,
// address pairs, with a fast drain poll; backends web and api are open to
// every VM on every port.
func testConfig(instances ...string) Config {
	c := Config{DrainPoll: 20 * time.Millisecond, CommandTimeout: 2 * time.Second,
		Allow: []Allow{{Backends: []string{"web", "api"}, Ports: []string{"1-65535"}}}}
	for i := 0; i+1 < len(instances); i += 2 {
		c.Instances = append(c.Instances, Instance{Name: instances[i], Address: instances[i+1]})
	}
	return c
}

// recorder records the runtime API commands a Target sends.
type recorder struct {
	mu   sync.Mutex
	cmds []string
}

func (r *recorder) add(cmd string) { r.mu.Lock(); r.cmds = append(r.cmds, cmd); r.mu.Unlock() }

// take returns the commands recorded since the last call.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.cmds
	r.cmds = nil
	return c
}

// changing returns the commands of cmds that change state (not "show").
func changing(cmds []string) []string {
	var out []string
	for _, c := range cmds {
		if !strings.HasPrefix(c, "show ") {
			out = append(out, c)
		}
	}
	return out
}

// newTarget builds a Target logging to the test and recording commands.
func newTarget(t *testing.T, cfg Config) (*Target, *recorder) {
	t.Helper()
	tgt, rec, _ := newTargetLog(t, cfg)
	return tgt, rec
}

// newTargetLog is newTarget that also keeps the log, as JSON, in a buffer.
func newTargetLog(t *testing.T, cfg Config) (*Target, *recorder, *testenv.LogBuffer) {
	t.Helper()
	buf := &testenv.LogBuffer{}
	console := zerolog.NewConsoleWriter(zerolog.ConsoleTestWriter(t))
	log := zerolog.New(zerolog.MultiLevelWriter(console, buf)).Level(zerolog.DebugLevel)
	tgt, err := New(cfg, worker.Deps{Log: log})
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	rec := &recorder{}
	for _, c := range tgt.clients {
		c.trace = rec.add
	}
	return tgt, rec, buf
}

// testVM is a running OpenNebula VM on 127.0.0.1 in the given backends.
func testVM(id, backends string) *eventbus.VM {
	vm := &eventbus.VM{Cloud: "one", CloudType: "opennebula", ID: id, Name: "vm" + id,
		Kind: eventbus.KindRunning, State: "ACTIVE", LCMState: "RUNNING",
		NICs: []eventbus.NIC{{ID: "0", Network: "lan", IP: "127.0.0.1"}}}
	if backends != "" {
		vm.Attributes = map[string]string{DefaultAttribute: backends}
	}
	return vm
}

// applyOnce does what the runtime does for one delivery: Desired, then Apply
// from have.
func applyOnce(t *testing.T, tgt *Target, vm *eventbus.VM, have worker.Objects) (worker.Objects, error) {
	t.Helper()
	want, err := tgt.Desired(vm)
	if err != nil {
		return have, err
	}
	return tgt.Apply(context.Background(), worker.Request{VM: vm, Have: have, Want: want})
}

// converge simulates the runtime: it delivers the VM again and again while
// Apply asks to be requeued, and returns what is in place at the end with
// the final error (nil when converged). Requeue delays are not slept: the
// loop polls until Apply stops asking.
func converge(t *testing.T, tgt *Target, vm *eventbus.VM, have worker.Objects) (worker.Objects, error) {
	t.Helper()
	var err error
	testenv.WaitFor(t, 30*time.Second, "apply without requeue", func() bool {
		have, err = applyOnce(t, tgt, vm, have)
		return !isRequeue(err)
	})
	return have, err
}

// mustConverge is converge that fails the test on an error.
func mustConverge(t *testing.T, tgt *Target, vm *eventbus.VM, have worker.Objects) worker.Objects {
	t.Helper()
	got, err := converge(t, tgt, vm, have)
	if err != nil {
		t.Fatalf("converge vm %s: %v", vm.ID, err)
	}
	return got
}

// servers reads "show servers state" of an instance.
func servers(t *testing.T, h *testenv.HAProxy) map[string]server {
	t.Helper()
	s, err := parseServersState(h.Command("show servers state"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// get requests url with its own connection and returns status and body
// (status 0 and the error text when the request failed).
func get(ctx context.Context, url string) (int, string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
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

// awaitBody waits until a GET through the frontend returns 200 with body.
func awaitBody(t *testing.T, frontend, body string) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, "200 "+body+" from "+frontend, func() bool {
		code, b := get(context.Background(), "http://"+frontend+"/")
		return code == 200 && b == body
	})
}

func port(be *testenv.HTTPBackend) string { return strconv.Itoa(be.Port) }

func isPermanentConflict(err error) bool {
	return worker.IsPermanent(err) && errors.Is(err, worker.ErrConflict)
}

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// metric checks the value of one counter or gauge of the target.
func metric(t *testing.T, c prometheus.Collector, want float64) {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	m := <-ch
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatal(err)
	}
	got := pb.GetCounter().GetValue() + pb.GetGauge().GetValue()
	if got != want {
		t.Fatalf("metric %s = %v, want %v", m.Desc(), got, want)
	}
}
