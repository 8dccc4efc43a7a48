package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natsserver"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/serve"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// hookBin is the real vmglue-hook, built once: the tests run it as HEM does.
var hookBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vmglue-serve-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hookBin, err = testenv.BuildBinary("github.com/vmglue/vmglue/cmd/vmglue-hook", dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	testenv.StopPuppet() // only a stack this binary started itself
	os.RemoveAll(dir)
	os.Exit(code)
}

// instance is one running `vmglue serve`, in process.
type instance struct {
	Info   serve.Info
	cancel context.CancelFunc
	done   chan error
}

// baseConfig is an embedded-NATS config on random ports with fast retries.
func baseConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.NATS.Embedded.Listen = "127.0.0.1:0"
	cfg.NATS.Embedded.DataDir = t.TempDir()
	cfg.Metrics.Listen = ""
	cfg.Runtime.BackoffBase = 50 * time.Millisecond
	cfg.Runtime.BackoffMax = 300 * time.Millisecond
	return cfg
}

// start runs serve with cfg. Its log is kept and printed (the end of it)
// if the test fails, so that a failure in CI shows what serve did.
func start(t *testing.T, cfg *config.Config) *instance {
	t.Helper()
	logs := &testenv.LogBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			t.Logf("serve log (last %d lines):\n%s", min(len(lines), 80), strings.Join(lines[max(0, len(lines)-80):], "\n"))
		}
	})
	return startLog(t, cfg, zerolog.New(logs).Level(zerolog.DebugLevel).With().Timestamp().Logger())
}

// startLog is start with serve logging to log.
func startLog(t *testing.T, cfg *config.Config, log zerolog.Logger) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{cancel: cancel, done: make(chan error, 1)}
	ready := make(chan serve.Info, 1)
	go func() {
		in.done <- serve.Run(ctx, serve.Options{Config: cfg, Ready: func(i serve.Info) { ready <- i }}, log)
	}()
	select {
	case in.Info = <-ready:
	case err := <-in.done:
		cancel()
		t.Fatalf("serve exited: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("serve not ready after 60s")
	}
	t.Cleanup(in.stop)
	return in
}

func (in *instance) stop() {
	if in.cancel == nil {
		return
	}
	in.cancel()
	<-in.done
	in.cancel = nil
}

// dnsConfig points the dns worker at a real DNS server, with a 1s timeout
// per exchange.
func dnsConfig(t *testing.T, b *testenv.DNS, secretFile string) *config.Config {
	t.Helper()
	return dnsConfigTimeout(t, b, secretFile, "1s")
}

// dnsConfigTimeout is dnsConfig with another timeout.
func dnsConfigTimeout(t *testing.T, b *testenv.DNS, secretFile, timeout string) *config.Config {
	t.Helper()
	cfg := baseConfig(t)
	cfg.Workers = loadWorker(t, "dns", dnsWorkerYAML(b, secretFile, timeout))
	return cfg
}

// dnsWorkerYAML is the workers.dns section for b.
func dnsWorkerYAML(b *testenv.DNS, secretFile, timeout string) string {
	if secretFile == "" {
		secretFile = b.SecretPath
	}
	return fmt.Sprintf(`servers: [%q]
tsig: {name: %s, secret_file: %s}
forward_zones: [cloud.test.]
reverse_zones: [10.in-addr.arpa., 8.b.d.0.1.0.0.2.ip6.arpa.]
timeout: %s
`, b.Addr, b.KeyName, secretFile, timeout)
}

// loadWorker loads a configuration file holding only the section raw of
// worker name, under "workers:", the way an operator writes it, and returns
// its workers (defaults set, validated).
func loadWorker(t *testing.T, name, raw string) config.Workers {
	t.Helper()
	c, err := config.Load(writeFile(t, "vmglue.yaml", "workers:\n  "+name+":\n"+indent(raw, "    ")))
	if err != nil {
		t.Fatal(err)
	}
	return c.Workers
}

func indent(s, p string) string {
	return p + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+p) + "\n"
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// roleURL is in's NATS URL with the credential of role (serve made it in
// its data directory).
func (in *instance) roleURL(t *testing.T, role string) string {
	t.Helper()
	pw, err := natsserver.ReadCredential(in.Info.DataDir, role)
	if err != nil {
		t.Fatalf("credential of %s: %v", role, err)
	}
	return natstest.RoleURL(in.Info.NATSURL, role, pw)
}

// connect connects to in's NATS as serve does (every permission).
func (in *instance) connect(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return natstest.Connect(t, in.roleURL(t, eventbus.RoleServe))
}

// external is a NATS that no serve of this test started (an open
// natstest server), for hook.
func external(url string) *instance { return &instance{Info: serve.Info{NATSURL: url}} }

// hookEnv is the environment of a hook run against in, with the hook's
// credential file, as hook.env gives it, when in's NATS wants one.
func (in *instance) hookEnv() []string {
	env := []string{"VMGLUE_NATS_URL=" + in.Info.NATSURL}
	if in.Info.DataDir != "" {
		env = append(env, "VMGLUE_NATS_USER="+eventbus.RoleHook,
			"VMGLUE_NATS_PASSWORD_FILE="+eventbus.CredentialPath(in.Info.DataDir, eventbus.RoleHook))
	}
	return env
}

// hook runs vmglue-hook once against in, as HEM does, and fails the test
// unless it exits 0.
func hook(t *testing.T, in *instance, spoolDir string, v testenv.OneVM, word string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, hookBin)
	cmd.Env = append(append([]string{"PATH=" + os.Getenv("PATH"), "VMGLUE_CLOUD=one",
		"VMGLUE_SPOOL_DIR=" + spoolDir, "VMGLUE_HOOK_TIMEOUT=2s"}, in.hookEnv()...), env...)
	cmd.Stdin = bytes.NewReader(testenv.HookStdin(testenv.OneVMXML(v), word))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Errorf("vmglue-hook %d %s: %v: %s", v.ID, word, err, stderr.String())
	}
	return stderr.String()
}

func running(id int, name, ip, ip6 string, t0 int64) testenv.OneVM {
	return testenv.OneVM{ID: id, Name: name, IP: ip, IP6: ip6, State: 3, LCM: 3, Time: t0}
}

func done(v testenv.OneVM) testenv.OneVM {
	v.State, v.LCM, v.Time = 6, 0, v.Time+60
	return v
}

// idle waits until the worker's consumer has nothing pending or in flight.
func idle(t *testing.T, js jetstream.JetStream, workerName string) {
	t.Helper()
	testenv.WaitFor(t, 60*time.Second, workerName+" consumer idle", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := js.Consumer(ctx, eventbus.StreamEvents, worker.ConsumerName(workerName))
		if err != nil {
			return false
		}
		i, err := c.Info(ctx)
		return err == nil && i.NumPending == 0 && i.NumAckPending == 0
	})
}

// deadLetters returns the dead letters stored so far.
func deadLetters(t *testing.T, js jetstream.JetStream) []worker.DeadLetter {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, eventbus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []worker.DeadLetter
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted
		}
		if err != nil {
			t.Fatalf("get dead letter %d: %v", seq, err)
		}
		var d worker.DeadLetter
		if err := json.Unmarshal(m.Data, &d); err != nil {
			t.Fatalf("dead letter %d: %v", seq, err)
		}
		out = append(out, d)
	}
	return out
}

// awaitMetrics waits until serve's /metrics holds every one of want.
func awaitMetrics(t *testing.T, in *instance, want ...string) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, "metrics "+strings.Join(want, ", "), func() bool {
		resp, err := http.Get("http://" + in.Info.MetricsAddr + "/metrics")
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, m := range want {
			if !strings.Contains(string(body), m) {
				return false
			}
		}
		return true
	})
}

// fire runs the hook for each VM, 10 at a time; word "" is each VM's own.
func fire(t *testing.T, in *instance, spoolDir string, vms []testenv.OneVM, word string) {
	t.Helper()
	sem := make(chan struct{}, 10)
	var wg sync.WaitGroup
	for _, v := range vms {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			w := word
			if w == "" { // each run's own state, as HEM's per-state hooks
				w = map[bool]string{true: "done", false: "running"}[v.State == 6]
			}
			hook(t, in, spoolDir, v, w)
		}()
	}
	wg.Wait()
}

var _ = natstest.Connect
