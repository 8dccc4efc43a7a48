package serve_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// serveProcess starts the real vmglue binary as `vmglue serve` with the
// config file cfg; its log is shown if the test fails. It is killed (by
// its own pid) at the end.
func serveProcess(t *testing.T, bin, cfg, name string) (*exec.Cmd, *testenv.LogBuffer) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", cfg, "--metrics-listen", "")
	logs := &testenv.LogBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("serve %s log:\n%s", name, logs.String())
		}
	})
	return cmd, logs
}

// Two `vmglue serve` processes share one NATS. A takes a VM's lease and
// is paused (SIGSTOP) while its DNS UPDATE waits in the batch, for longer
// than the lease's TTL; B then converges the VM's delete. When A resumes
// (SIGCONT) it must send nothing: before, its batcher sent the UPDATE with
// the target's own context and the deleted VM's A record came back as an
// orphan that no registry knows.
func TestTwoServesPausedInstanceSendsNothing(t *testing.T) {
	bin, err := testenv.BuildBinary("github.com/vmglue/vmglue/cmd/vmglue", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	srv := natstest.Start(t)
	cfg := writeFile(t, "vmglue.yaml", fmt.Sprintf(`log: {level: debug, format: json}
nats: {url: %q}
runtime: {backoff_base: 50ms, backoff_max: 300ms}
workers:
  dns:
    servers: [%q]
    tsig: {name: %s, secret_file: %s}
    forward_zones: [cloud.test.]
    reverse_zones: [10.in-addr.arpa.]
    timeout: 1s
    batch: {window: 1s}
`, srv.URL, b.Addr, b.KeyName, b.SecretPath))
	_, js := natstest.Connect(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	a, alog := serveProcess(t, bin, cfg, "A")
	testenv.WaitFor(t, 60*time.Second, "serve A consuming", func() bool {
		_, err := js.Consumer(ctx, eventbus.StreamEvents, worker.ConsumerName("dns"))
		return err == nil
	})
	locks, err := js.KeyValue(ctx, eventbus.BucketLocks)
	if err != nil {
		t.Fatal(err)
	}
	w, err := locks.Watch(ctx, "dns.one.77", jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop() }()

	v := running(77, "paused", "10.0.0.77", "", time.Now().Unix())
	hook(t, external(srv.URL), t.TempDir(), v, "running")
	select {
	case e := <-w.Updates():
		if e == nil || e.Operation() != jetstream.KeyValuePut {
			t.Fatalf("lease watch: %v", e)
		}
	case <-ctx.Done():
		t.Fatal("serve A never took the VM's lease")
	}
	if err := a.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	if got := b.Lookup(t, "paused.cloud.test.", mdns.TypeA); len(got) != 0 {
		t.Fatalf("A's UPDATE was sent before the pause (%v): the test cannot show anything", got)
	}

	// B converges the delete once the server has freed A's lease.
	_, blog := serveProcess(t, bin, cfg, "B")
	del := done(v)
	out := hook(t, external(srv.URL), t.TempDir(), del, "done")
	delID := strings.Fields(out)[2]
	reg, err := worker.OpenRegistry(ctx, js, "dns")
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 120*time.Second, "B converged the delete", func() bool {
		rec, _, err := reg.Get(ctx, "one.77")
		return err == nil && rec != nil && rec.EventID == delID && len(rec.Pending) == 0 && len(rec.Applied) == 0
	})
	if !strings.Contains(blog.String(), delID) {
		t.Fatalf("the delete was not converged by B")
	}
	if since := time.Since(paused); since < eventbus.LockTTL {
		t.Fatalf("B converged %s after the pause, before the lease's TTL %s: A's lease was not held", since, eventbus.LockTTL)
	}

	mark := len(alog.String())
	if err := a.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// A settles its converge (failed: lease lost), then the VM is idle.
	testenv.WaitFor(t, 60*time.Second, "A's converge settled after the resume", func() bool {
		return strings.Contains(alog.String()[mark:], "converge failed")
	})
	idle(t, js, "dns")
	if got := b.Lookup(t, "paused.cloud.test.", mdns.TypeA); len(got) != 0 {
		t.Fatalf("the paused instance's UPDATE landed after its lease was lost: paused.cloud.test. A %v", got)
	}
	if got := b.Lookup(t, "77.0.0.10.in-addr.arpa.", mdns.TypePTR); len(got) != 0 {
		t.Fatalf("PTR %v left by the paused instance", got)
	}
	rec, _, err := reg.Get(ctx, "one.77")
	if err != nil || rec == nil || len(rec.Applied) != 0 || len(rec.Pending) != 0 {
		t.Fatalf("registry after the resume: %+v, %v", rec, err)
	}
}
