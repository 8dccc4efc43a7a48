package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// HAProxyBackend is one backend of the test configuration.
type HAProxyBackend struct {
	// Name of the backend; it also gets its own frontend (see HAProxy.Frontend).
	Name string
	// Balance is the algorithm, "roundrobin" when empty.
	Balance string
	// Servers are static server lines without the keyword, e.g.
	// "one-42 127.0.0.1:9 disabled".
	Servers []string
}

// HAProxyOptions configures StartHAProxy.
type HAProxyOptions struct {
	Backends []HAProxyBackend
	// TCPAdmin adds a second admin socket on a free 127.0.0.1 port.
	TCPAdmin bool
	// Defaults are extra lines for the defaults section.
	Defaults []string
}

// HAProxy is a master-worker haproxy (haproxy -W -db) run as a child of the
// test process. Its runtime API is on a unix socket and optionally on TCP;
// the master CLI (-S) is used only to know when the master takes signals.
type HAProxy struct {
	t   testing.TB
	dir string
	cfg string
	// Socket is the path of the admin unix socket.
	Socket string
	// TCP is the address of the TCP admin socket ("127.0.0.1:port") or "".
	TCP string
	// Frontend maps a backend name to the address of its frontend.
	Frontend map[string]string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	cut  bool // CutAdmin: the socket file is renamed away
}

// StartHAProxy writes a configuration for opts, starts haproxy and waits until
// its runtime API and every frontend accept connections. It is stopped by PID
// in t.Cleanup.
func StartHAProxy(t testing.TB, opts HAProxyOptions) *HAProxy {
	t.Helper()
	Need(t, "haproxy")
	// A unix socket path is limited to 108 bytes; t.TempDir can be longer.
	dir, err := os.MkdirTemp("", "hap")
	if err != nil {
		t.Fatalf("haproxy dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h := &HAProxy{t: t, dir: dir, cfg: filepath.Join(dir, "haproxy.cfg"),
		Socket: filepath.Join(dir, "admin.sock"), Frontend: map[string]string{}}
	var b strings.Builder
	fmt.Fprintf(&b, "global\n    stats socket %s mode 600 level admin expose-fd listeners\n", h.Socket)
	if opts.TCPAdmin {
		h.TCP = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		fmt.Fprintf(&b, "    stats socket ipv4@%s level admin\n", h.TCP)
	}
	b.WriteString("    stats timeout 30s\n    log stderr format short local0 notice\n")
	b.WriteString("defaults\n    mode http\n    log global\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n")
	for _, l := range opts.Defaults {
		fmt.Fprintf(&b, "    %s\n", l)
	}
	for _, be := range opts.Backends {
		addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		h.Frontend[be.Name] = addr
		fmt.Fprintf(&b, "frontend fe_%s\n    bind %s\n    default_backend %s\n", be.Name, addr, be.Name)
		balance := be.Balance
		if balance == "" {
			balance = "roundrobin"
		}
		fmt.Fprintf(&b, "backend %s\n    balance %s\n", be.Name, balance)
		for _, s := range be.Servers {
			fmt.Fprintf(&b, "    server %s\n", s)
		}
	}
	if err := os.WriteFile(h.cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatalf("write haproxy cfg: %v", err)
	}
	if out, err := exec.Command("haproxy", "-c", "-q", "-f", h.cfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, b.String())
	}
	h.Start()
	t.Cleanup(h.stop)
	return h
}

// Admin returns the runtime API address in the form vmglue's configuration
// uses: "unix:<path>".
func (h *HAProxy) Admin() string { return "unix:" + h.Socket }

// AdminTCP returns "tcp:<addr>" of the TCP admin socket ("" without one).
func (h *HAProxy) AdminTCP() string {
	if h.TCP == "" {
		return ""
	}
	return "tcp:" + h.TCP
}

// Start runs haproxy (again, after Stop) and waits until it serves.
func (h *HAProxy) Start() {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd != nil {
		h.t.Fatal("haproxy already running")
	}
	logf, err := os.OpenFile(filepath.Join(h.dir, "haproxy.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		h.t.Fatalf("haproxy log: %v", err)
	}
	cmd := exec.Command("haproxy", "-W", "-db", "-S", h.master(), "-f", h.cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		h.t.Fatalf("start haproxy: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	h.cmd, h.done = cmd, done
	err = Poll(context.Background(), 10*time.Second, func() bool {
		select {
		case <-done:
			return true
		default:
		}
		if _, err := h.info(); err != nil {
			return false
		}
		// The master takes signals once its own CLI serves: before, a
		// SIGUSR2 is lost.
		if r, err := RuntimeCommand(h.master(), "show proc;quit"); err != nil || !strings.Contains(r, "worker") {
			return false
		}
		for _, a := range h.Frontend {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err != nil {
				return false
			}
			c.Close()
		}
		return true
	})
	select {
	case <-done:
		h.cmd = nil
		h.t.Fatalf("haproxy exited at start:\n%s", h.Log())
	default:
	}
	if err != nil {
		h.t.Fatalf("haproxy not ready: %v\n%s", err, h.Log())
	}
}

// Stop terminates haproxy (master and worker) and waits for it to exit.
func (h *HAProxy) Stop() {
	h.t.Helper()
	h.stop()
}

func (h *HAProxy) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil {
		return
	}
	pid := h.cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(5 * time.Second):
		// The master did not stop: kill its process group (our own child's).
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-h.done
	}
	h.cmd = nil
}

// Reload sends SIGUSR2 to the master and waits until a new worker serves the
// runtime API (its Pid in "show info" changed) and the re-executed master
// knows it (master CLI "show proc"), so that the next Reload is not lost.
func (h *HAProxy) Reload() {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil {
		h.t.Fatal("reload: haproxy not running")
	}
	old, err := h.info()
	if err != nil {
		h.t.Fatalf("reload: %v", err)
	}
	if err := h.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		h.t.Fatalf("reload: %v", err)
	}
	err = Poll(context.Background(), 10*time.Second, func() bool {
		pid, err := h.info()
		if err != nil || pid == old {
			return false
		}
		r, err := RuntimeCommand(h.master(), "show proc;quit")
		return err == nil && strings.Contains(r, strconv.Itoa(pid))
	})
	if err != nil {
		h.t.Fatalf("haproxy reload: %v\n%s", err, h.Log())
	}
}

func (h *HAProxy) master() string { return filepath.Join(h.dir, "master.sock") }

// CutAdmin makes the admin unix socket unreachable at its address while
// haproxy keeps running and serving with all its servers, as a network
// partition would: the socket file is renamed away, so a connection to
// Socket fails at once (Command still reaches it). RestoreAdmin undoes it.
// Do not Reload or Stop while cut.
func (h *HAProxy) CutAdmin() {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := os.Rename(h.Socket, h.Socket+".cut"); err != nil {
		h.t.Fatalf("cut admin socket: %v", err)
	}
	h.cut = true
}

// RestoreAdmin puts the socket cut by CutAdmin back.
func (h *HAProxy) RestoreAdmin() {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := os.Rename(h.Socket+".cut", h.Socket); err != nil {
		h.t.Fatalf("restore admin socket: %v", err)
	}
	h.cut = false
}

// socket is where the admin unix socket is now (see CutAdmin).
func (h *HAProxy) socket() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cut {
		return h.Socket + ".cut"
	}
	return h.Socket
}

// Log returns what haproxy wrote to stderr so far.
func (h *HAProxy) Log() string {
	b, _ := os.ReadFile(filepath.Join(h.dir, "haproxy.log"))
	return string(b)
}

// Command runs one runtime API command on the unix socket and returns the
// reply with surrounding white space trimmed. It fails the test on a
// connection error.
func (h *HAProxy) Command(cmd string) string {
	h.t.Helper()
	r, err := RuntimeCommand(h.socket(), cmd)
	if err != nil {
		h.t.Fatalf("haproxy %q: %v", cmd, err)
	}
	return r
}

// info returns the worker's Pid from "show info".
func (h *HAProxy) info() (int, error) {
	r, err := RuntimeCommand(h.Socket, "show info")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(r, "\n") {
		if v, ok := strings.CutPrefix(l, "Pid: "); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, errors.New("no Pid in show info")
}

// RuntimeCommand sends one command to an HAProxy admin unix socket and reads
// the reply to EOF. It is the test harness's own minimal client.
func RuntimeCommand(socket, cmd string) (string, error) {
	c, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(cmd + "\n")); err != nil {
		return "", err
	}
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return strings.TrimSpace(b.String()), nil
}
