package faults

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

const (
	forwardZone  = "cloud.test."
	reverseZone  = "10.in-addr.arpa."
	installation = "faults"
)

// stack is one case's world: a 3-node NATS cluster, a BIND serving the
// zones, and the vmglue serve processes started on it.
type stack struct {
	cluster *testenv.NATSCluster
	bind    *testenv.DNS
	js      jetstream.JetStream
	cfg     string // vmglue serve's configuration file
}

// newStack starts the cluster and BIND and writes serve's configuration:
// every node's URL, replicas 3, the dns worker on BIND. logLevel is
// serve's (debug when a case reads which instance converged an event);
// dnsExtra are more lines of the dns worker's configuration.
func newStack(t *testing.T, logLevel string, dnsExtra ...string) *stack {
	t.Helper()
	s := &stack{
		cluster: testenv.StartNATSCluster(t, natsServerBin, 3),
		bind:    testenv.StartBIND(t, testenv.BINDOptions{Zones: []string{forwardZone, reverseZone}}),
	}
	s.cfg = filepath.Join(t.TempDir(), "vmglue.yaml")
	cfg := fmt.Sprintf(`log: {level: %s, format: json}
installation: %s
nats:
  url: %q
  stream: {replicas: 3}
runtime: {backoff_base: 50ms, backoff_max: 1s}
workers:
  dns:
    servers: [%q]
    tsig: {name: %s, algorithm: %s, secret_file: %q}
    forward_zones: [%s]
    reverse_zones: [%s]
    timeout: 2s
%s`, logLevel, installation, s.cluster.URLs(), s.bind.Addr, s.bind.KeyName, s.bind.Algorithm, s.bind.SecretPath,
		forwardZone, reverseZone, strings.Join(dnsExtra, ""))
	if err := os.WriteFile(s.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range s.cluster.Nodes {
				keepLog(t, "nats-"+n.Name+".log", n.Log.String())
			}
		}
	})
	_, s.js = natstest.Connect(t, s.cluster.URLs())
	t.Cleanup(func() {
		if t.Failed() {
			s.logConsumer(t)
		}
	})
	// As an operator would before the first hook runs (serve does the
	// same on start, with the same options).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := eventbus.Provision(ctx, s.js, eventbus.ProvisionOptions{Replicas: 3}); err != nil {
		t.Fatalf("provision the cluster: %v", err)
	}
	return s
}

// serveProc is one `vmglue serve` process.
type serveProc struct {
	name   string
	cmd    *exec.Cmd
	log    *testenv.LogBuffer
	exited chan struct{}
}

// startServe starts `vmglue serve` on the stack's configuration and waits
// until it is ready.
func (s *stack) startServe(t *testing.T, name string) *serveProc {
	t.Helper()
	p := s.launchServe(t, name)
	p.waitReady(t)
	return p
}

// launchServe starts `vmglue serve` on the stack's configuration.
// t.Cleanup stops it by its pid.
func (s *stack) launchServe(t *testing.T, name string) *serveProc {
	t.Helper()
	cmd := exec.Command(vmglueBin, "serve", "--config", s.cfg, "--metrics-listen", "")
	p := &serveProc{name: name, cmd: cmd, log: &testenv.LogBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		if t.Failed() {
			// The Go runtime prints every goroutine's stack and exits:
			// where a converge hangs.
			_ = cmd.Process.Signal(syscall.SIGQUIT)
		}
		testenv.Terminate(cmd.Process, p.exited, 15*time.Second)
		if t.Failed() {
			t.Logf("serve %s log (tail):\n%s", name, lastLines(p.log.String(), 30))
			keepLog(t, "serve-"+name+".log", p.log.String())
		}
	})
	return p
}

// waitReady waits until serve logs that it is ready (streams provisioned
// with replicas 3, workers consuming).
func (p *serveProc) waitReady(t *testing.T) {
	t.Helper()
	testenv.WaitFor(t, 2*time.Minute, "serve "+p.name+" ready", func() bool {
		select {
		case <-p.exited:
			t.Fatalf("serve %s exited: %s\n%s", p.name, p.cmd.ProcessState, lastLines(p.log.String(), 30))
		default:
		}
		return strings.Contains(p.log.String(), `"vmglue serve ready"`)
	})
}

// signal sends sig to the process (by its pid); SIGKILL also waits until
// it is gone.
func (p *serveProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s serve %s: %v", sig, p.name, err)
	}
	if sig == syscall.SIGKILL {
		<-p.exited
	}
}

// hookEnv is the environment of deploy/hook.env for a hook of this stack:
// every node's URL, the spool directory spool.
func (s *stack) hookEnv(spool string) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "VMGLUE_CLOUD=one", "VMGLUE_NATS_URL=" + s.cluster.URLs(),
		"VMGLUE_SPOOL_DIR=" + spool, "GOMAXPROCS=1"}
}

// streamLeader returns the index of the node leading the event stream.
func (s *stack) streamLeader(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := s.js.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		t.Fatalf("event stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("event stream info: %v", err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil {
		t.Fatalf("event stream: %d replicas, cluster %+v; want 3 on the cluster", info.Config.Replicas, info.Cluster)
	}
	i := s.cluster.Index(info.Cluster.Leader)
	if i < 0 {
		t.Fatalf("event stream leader %q is no node of the cluster", info.Cluster.Leader)
	}
	return i
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// keepLog writes a failed case's whole log into $VMGLUE_FAULTS_LOGS (when
// set) for a post-mortem.
func keepLog(t *testing.T, name, text string) {
	dir := os.Getenv("VMGLUE_FAULTS_LOGS")
	if dir == "" {
		return
	}
	path := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"-"+name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Logf("keep log: %v", err)
	}
}

// logConsumer logs the dns worker's consumer state (for a failed case:
// whether JetStream still holds work for it).
func (s *stack) logConsumer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := s.js.Consumer(ctx, eventbus.StreamEvents, worker.ConsumerName("dns"))
	if err != nil {
		t.Logf("dns consumer: %v", err)
		return
	}
	i, err := c.Info(ctx)
	if err != nil {
		t.Logf("dns consumer info: %v", err)
		return
	}
	t.Logf("dns consumer: delivered %d, ack floor %d, pending %d, ack pending %d, redelivered %d, waiting %d, leader %s",
		i.Delivered.Stream, i.AckFloor.Stream, i.NumPending, i.NumAckPending, i.NumRedelivered, i.NumWaiting, i.Cluster.Leader)
}
