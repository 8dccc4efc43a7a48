package cli_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natsserver"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/cli"
	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/ops/opstest"
	"github.com/vmglue/vmglue/internal/serve"
	"github.com/vmglue/vmglue/internal/testenv"
)

// served is a running serve and the config file the ops commands use
// with it (its data directory holds the role credentials).
type served struct {
	serve.Info
	config string
}

func startServe(t *testing.T) served { return startServeWith(t, "") }

// startServeWith is startServe with more of the config file (extra, YAML
// at the top level, may add keys to nats.embedded and sections).
func startServeWith(t *testing.T, extra string) served {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "vmglue.yaml")
	conf := "nats:\n  embedded:\n    listen: 127.0.0.1:0\n    data_dir: " + filepath.Join(dir, "data") + "\n" + extra + "metrics:\n  listen: 127.0.0.1:0\n"
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan serve.Info, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve.Run(ctx, serve.Options{Config: cfg, Ready: func(i serve.Info) { ready <- i }}, zerolog.Nop())
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case i := <-ready:
		return served{Info: i, config: path}
	case err := <-done:
		t.Fatalf("serve exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve not ready after 30s")
	}
	return served{}
}

func TestServeHealthAndMetrics(t *testing.T) {
	info := startServe(t)
	for _, path := range []string{"/healthz", "/metrics"} {
		resp, err := http.Get("http://" + info.MetricsAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		if path == "/metrics" && !strings.Contains(string(body), "go_goroutines") {
			t.Fatalf("/metrics without go metrics")
		}
	}
}

func TestServePortTakenOneLine(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var out, errb bytes.Buffer
	code := cli.Execute(context.Background(), []string{"serve", "--nats-listen", l.Addr().String(), "--data-dir", t.TempDir(), "--metrics-listen", ""}, &out, &errb)
	msg := errb.String()
	if code == 0 || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "already in use") {
		t.Fatalf("exit %d, stderr %q: want one line saying the address is in use", code, msg)
	}
}

// publish publishes vm's event as the hook does, with its credential.
func publish(t *testing.T, s served, vm eventbus.VM) eventbus.Event {
	t.Helper()
	pw, err := natsserver.ReadCredential(s.DataDir, eventbus.RoleHook)
	if err != nil {
		t.Fatal(err)
	}
	_, js := natstest.ConnectRole(t, s.NATSURL, eventbus.RoleHook, pw)
	ev, err := eventbus.NewEvent(vm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eventbus.Publish(context.Background(), js, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestTail(t *testing.T) {
	info := startServe(t)
	a := publish(t, info, opstest.VM("1", eventbus.KindRunning))
	b := publish(t, info, opstest.VM("2", eventbus.KindDeleted))
	tests := []struct {
		name string
		args []string
		want []string
		not  []string
	}{
		{"all json", []string{"--no-follow", "--json"}, []string{`"id":"` + a.ID + `"`, `"id":"` + b.ID + `"`}, nil},
		{"by vm", []string{"--no-follow", "--vm", "2"}, []string{"one/2 deleted", "ips=10.0.0.2"}, []string{"one/1 "}},
		{"by type", []string{"--no-follow", "--type", "vm.running"}, []string{"one/1 running", "state=ACTIVE/RUNNING host=node1"}, []string{"one/2"}},
		{"since", []string{"--no-follow", "--since", "1h"}, []string{"one/1", "one/2"}, nil},
		{"since future", []string{"--no-follow", "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, nil, []string{"one/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			code := cli.Execute(ctx, append([]string{"tail", "-c", info.config, "-s", info.NATSURL}, tt.args...), &out, &errb)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, n := range tt.not {
				if strings.Contains(out.String(), n) {
					t.Errorf("output has %q:\n%s", n, out.String())
				}
			}
		})
	}
}

func TestTailFollow(t *testing.T) {
	info := startServe(t)
	var out testenv.LogBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- cli.Execute(ctx, []string{"tail", "-c", info.config, "-s", info.NATSURL, "--json"}, &out, io.Discard)
	}()
	// tail starts with new events only: publish until it has printed one.
	var ev eventbus.Event
	testenv.WaitFor(t, 20*time.Second, "tail to print a new event", func() bool {
		v := opstest.VM("7", eventbus.KindRunning)
		v.Version.Changed = time.Now().UnixNano()
		ev = publish(t, info, v)
		return strings.Contains(out.String(), `"subject":"vm/7"`)
	})
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("tail exit %d", code)
	}
	_ = ev
}

func TestTailBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--type", "nope"}, {"--vm", "a b"}, {"--since", "yesterday"}} {
		var out, errb bytes.Buffer
		code := cli.Execute(context.Background(), append([]string{"tail", "-s", "nats://127.0.0.1:1", "--no-follow"}, args...), &out, &errb)
		if code == 0 || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("%v: exit %d stderr %q, want one error line", args, code, errb.String())
		}
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("log:\n  level: debug\nnats:\n  url: nats://user:pw@127.0.0.1:4222\n"), 0o600)
	os.WriteFile(bad, []byte("log:\n  levle: debug\n"), 0o600)
	var out, errb bytes.Buffer
	if code := cli.Execute(context.Background(), []string{"config", "check", "-c", good}, &out, &errb); code != 0 {
		t.Fatalf("good config: exit %d %s", code, errb.String())
	}
	if strings.Contains(out.String(), "pw@") || !strings.Contains(out.String(), "level: debug") {
		t.Fatalf("config check printed %q", out.String())
	}
	// The effective configuration: the runtime's defaults, as serve uses them.
	for _, want := range []string{"concurrency: 64\n", "max_deliver: 20\n", "backoff_base: 1s\n", "resync_interval: 5m0s\n", "listen: 127.0.0.1:9464\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("config check printed no %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	errb.Reset()
	if code := cli.Execute(context.Background(), []string{"config", "check", "-c", bad}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "levle") {
		t.Fatalf("bad config: exit %d stderr %q, want the unknown key named", code, errb.String())
	}
}
