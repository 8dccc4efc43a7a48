package lb

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// twoInstances is a VM in backend web of two HAProxy instances, converged.
type twoInstances struct {
	be     *testenv.HTTPBackend
	h1, h2 *testenv.HAProxy
	cfg    Config
	tgt    *Target
	rec    *recorder
	vm     *eventbus.VM
	have   worker.Objects
}

func startTwo(t *testing.T, id string) *twoInstances {
	t.Helper()
	s := &twoInstances{be: testenv.StartHTTPBackend(t, "vm"+id)}
	opts := testenv.HAProxyOptions{Backends: []testenv.HAProxyBackend{{Name: "web"}}}
	s.h1, s.h2 = testenv.StartHAProxy(t, opts), testenv.StartHAProxy(t, opts)
	s.cfg = testConfig("lb1", s.h1.Admin(), "lb2", s.h2.Admin())
	s.tgt, s.rec = newTarget(t, s.cfg)
	s.vm = testVM(id, "web:"+port(s.be))
	s.have = mustConverge(t, s.tgt, s.vm, nil)
	awaitBody(t, s.h1.Frontend["web"], s.be.Name)
	awaitBody(t, s.h2.Frontend["web"], s.be.Name)
	return s
}

// G1: a VM deleted while lb2 is down is recorded "leaving" on lb2; when lb2
// comes back (restarted: it forgot its dynamic servers), no Resync ever
// puts the server back, from this process or from a restarted one.
func TestDeleteWhileInstanceDownNeverReAdded(t *testing.T) {
	s := startTwo(t, "51")
	s.h2.Stop()
	s.vm.Kind = eventbus.KindDeleted
	got, err := applyOnce(t, s.tgt, s.vm, s.have)
	if err == nil || isRequeue(err) || worker.IsPermanent(err) {
		t.Fatalf("delete with lb2 down: %v, want a transient error", err)
	}
	if v := got["lb2/web/one-51"]; len(got) != 1 || !strings.HasPrefix(v, prefixLeaving) {
		t.Fatalf("applied %v, want only lb2 leaving", got)
	}
	if _, ok := servers(t, s.h1)["web/one-51"]; ok {
		t.Fatal("lb1 kept the server")
	}

	s.h2.Start()
	fresh, rec2 := newTarget(t, s.cfg)
	applied := map[string]worker.Objects{s.vm.Key(): got}
	for _, r := range []struct {
		tgt *Target
		rec *recorder
	}{{s.tgt, s.rec}, {fresh, rec2}} {
		r.rec.take()
		if err := r.tgt.Resync(context.Background(), applied); err != nil {
			t.Fatalf("resync: %v", err)
		}
		if c := changing(r.rec.take()); len(c) != 0 {
			t.Fatalf("resync sent %q", c)
		}
	}
	s.h2.Reload()
	if err := fresh.Resync(context.Background(), applied); err != nil {
		t.Fatalf("resync after reload: %v", err)
	}
	for _, h := range []*testenv.HAProxy{s.h1, s.h2} {
		if _, ok := servers(t, h)["web/one-51"]; ok {
			t.Fatal("a deleted VM's server came back")
		}
	}
	// The next converge clears the record.
	if got = mustConverge(t, s.tgt, s.vm, got); len(got) != 0 {
		t.Fatalf("applied after lb2 is back: %v", got)
	}
}

// G1: lb2 cut off (its runtime API unreachable, still serving with the
// server) while the VM is deleted: when it answers again, Resync drains
// the server, waits for the request in flight through lb2, and deletes
// it; it never enables it again.
func TestDeleteWhilePartitionedDrainedByResync(t *testing.T) {
	s := startTwo(t, "52")
	type result struct {
		code int
		body string
	}
	done := make(chan result, 1)
	go func() {
		code, body := get(context.Background(), "http://"+s.h2.Frontend["web"]+"/slow?ms=1000")
		done <- result{code, body}
	}()
	testenv.WaitFor(t, 5*time.Second, "slow request at the backend", func() bool { return s.be.InFlight() == 1 })

	s.h2.CutAdmin()
	s.vm.Kind = eventbus.KindDeleted
	got, err := applyOnce(t, s.tgt, s.vm, s.have)
	if err == nil || isRequeue(err) || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("delete with lb2 cut off: %v, want a transient error", err)
	}
	if !strings.HasPrefix(got["lb2/web/one-52"], prefixLeaving) {
		t.Fatalf("applied %v, want lb2 leaving", got)
	}
	if sv, ok := servers(t, s.h2)["web/one-52"]; !ok || sv.Admin != 0 {
		t.Fatalf("lb2 server while cut off: %+v (present %v), want still in the pool", sv, ok)
	}

	s.h2.RestoreAdmin()
	s.rec.take()
	applied := map[string]worker.Objects{s.vm.Key(): got}
	if err := s.tgt.Resync(context.Background(), applied); err != nil {
		t.Fatalf("resync: %v", err)
	}
	sv, ok := servers(t, s.h2)["web/one-52"]
	if !ok || sv.Admin&adminForcedDrain == 0 {
		t.Fatalf("lb2 server after resync: %+v (present %v), want draining", sv, ok)
	}
	if r := <-done; r.code != 200 || r.body != "vm52 slow" {
		t.Fatalf("slow request through the draining server: %d %q", r.code, r.body)
	}
	testenv.WaitFor(t, 10*time.Second, "lb2 server deleted by resync", func() bool {
		if err := s.tgt.Resync(context.Background(), applied); err != nil {
			t.Fatalf("resync: %v", err)
		}
		_, ok := servers(t, s.h2)["web/one-52"]
		return !ok
	})
	for _, c := range changing(s.rec.take()) {
		if strings.HasPrefix(c, "add server") || strings.HasPrefix(c, "enable server") ||
			strings.HasSuffix(c, "state ready") {
			t.Fatalf("resync of a leaving server sent %q", c)
		}
	}
	if got = mustConverge(t, s.tgt, s.vm, got); len(got) != 0 {
		t.Fatalf("applied after lb2 answers: %v", got)
	}
}

// G3: lb2 down does not hide lb1's drain: Apply asks for a requeue at the
// drain poll (no delivery used), not for a retry with backoff, and names
// lb2's failure.
func TestDrainRequeuedWhileOtherInstanceDown(t *testing.T) {
	s := startTwo(t, "53")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go get(ctx, "http://"+s.h1.Frontend["web"]+"/slow?ms=20000")
	testenv.WaitFor(t, 5*time.Second, "slow request at the backend", func() bool { return s.be.InFlight() == 1 })

	s.h2.Stop()
	s.vm.Kind = eventbus.KindStopped
	got, err := applyOnce(t, s.tgt, s.vm, s.have)
	var rq *worker.RequeueError
	if !errors.As(err, &rq) || rq.After > s.cfg.DrainPoll || !strings.Contains(rq.Reason, "lb2") {
		t.Fatalf("drain on lb1 with lb2 down: %v, want a requeue within %s naming lb2", err, s.cfg.DrainPoll)
	}
	if sp, err := parseSpec(got["lb1/web/one-53"]); err != nil || sp.Since.IsZero() {
		t.Fatalf("lb1 recorded %q, want draining", got["lb1/web/one-53"])
	}
	if !strings.HasPrefix(got["lb2/web/one-53"], prefixLeaving) {
		t.Fatalf("lb2 recorded %q, want leaving", got["lb2/web/one-53"])
	}
}

func TestUnreachedValue(t *testing.T) {
	const a, b = "127.0.0.1:80 weight 1", "127.0.0.2:80 weight 1"
	drainA := prefixDraining + "1700000000.000 " + a
	tests := []struct{ name, old, new, want string }{
		{"wanted, in place", a, a, a},
		{"wanted, in place elsewhere", a, b, a},
		{"wanted, added", prefixAdded + a, a, prefixAdded + a},
		{"wanted, new", "", a, prefixWanted + a},
		{"wanted, still", prefixWanted + a, a, prefixWanted + a},
		{"wanted, back while draining", drainA, a, prefixWanted + a},
		{"wanted elsewhere while draining", drainA, b, drainA},
		{"wanted, back while leaving", prefixLeaving + a, a, prefixWanted + a},
		{"wanted elsewhere while leaving", prefixLeaving + a, b, prefixLeaving + a},
		{"unwanted, in place", a, "", prefixLeaving + a},
		{"unwanted, added", prefixAdded + a, "", prefixLeaving + a},
		{"unwanted, draining", drainA, "", drainA},
		{"unwanted, leaving", prefixLeaving + a, "", prefixLeaving + a},
		{"unwanted, wanted", prefixWanted + a, "", prefixLeaving + a},
		{"nothing", "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := unreached(tc.old, tc.new); got != tc.want {
				t.Fatalf("unreached(%q, %q) = %q, want %q", tc.old, tc.new, got, tc.want)
			}
		})
	}
}
