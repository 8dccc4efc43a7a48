package cli_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natsserver"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/testenv"
)

// The real binary as systemd runs it (Type=notify): READY=1 on
// NOTIFY_SOCKET once serving, and SIGTERM is a clean exit 0.
func TestServeProcessNotifyAndSIGTERM(t *testing.T) {
	bin, err := testenv.BuildBinary("github.com/vmglue/vmglue/cmd/vmglue", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	dataDir := t.TempDir()
	p := startNotifying(t, bin, "serve", "--config", "/dev/null", "--nats-listen", addr,
		"--data-dir", dataDir, "--metrics-listen", "")
	p.awaitReady(t)
	// Secure by default: a local client without a credential is refused.
	if nc, err := nats.Connect("nats://"+addr, nats.NoReconnect()); err == nil || !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("a client without credentials: %v, want an authorization violation", err)
	}
	// Ready means ready: the streams are there, for the ops role.
	pw, err := natsserver.ReadCredential(dataDir, eventbus.RoleOps)
	if err != nil {
		t.Fatal(err)
	}
	_, js := natstest.ConnectRole(t, "nats://"+addr, eventbus.RoleOps, pw)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.Stream(ctx, eventbus.StreamEvents); err != nil {
		t.Fatalf("after READY=1: %v", err)
	}

	p.term(t)
	if !strings.Contains(p.logs.String(), "shutting down") {
		t.Errorf("no shutdown in the log:\n%s", p.logs.String())
	}
}

// notifying is a vmglue process started as systemd starts a Type=notify
// service: NOTIFY_SOCKET set, output kept.
type notifying struct {
	cmd    *exec.Cmd
	conn   *net.UnixConn
	logs   *testenv.LogBuffer
	exited chan error
}

func startNotifying(t *testing.T, bin string, args ...string) *notifying {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p := &notifying{cmd: exec.Command(bin, args...), conn: conn, logs: &testenv.LogBuffer{}, exited: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// awaitReady waits for READY=1 on the notify socket.
func (p *notifying) awaitReady(t *testing.T) {
	t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	buf := make([]byte, 256)
	n, err := p.conn.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("notify socket: %q, %v; log:\n%s", buf[:n], err, p.logs.String())
	}
}

// term sends SIGTERM and wants exit 0 within 30 s.
func (p *notifying) term(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v; log:\n%s", err, p.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30s after SIGTERM; log:\n%s", p.logs.String())
	}
}
