package cli_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
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
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cmd := exec.Command(bin, "serve", "--config", "/dev/null", "--nats-listen", addr,
		"--data-dir", t.TempDir(), "--metrics-listen", "")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	var logs testenv.LogBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	buf := make([]byte, 256)
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("notify socket: %q, %v; log:\n%s", buf[:n], err, logs.String())
	}
	// Ready means ready: the streams are there.
	_, js := natstest.Connect(t, "nats://"+addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.Stream(ctx, eventbus.StreamEvents); err != nil {
		t.Fatalf("after READY=1: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v; log:\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30s after SIGTERM; log:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "shutting down") {
		t.Errorf("no shutdown in the log:\n%s", logs.String())
	}
}
