// Package testenv starts the real servers vmglue's tests run against (BIND,
// Knot DNS, PowerDNS, HAProxy, Puppet Server, PuppetDB) on loopback, as children of the test
// process, and waits for their true readiness. The Debian packages are
// installed by scripts/test-deps.sh (make test-deps, part of make test); a
// missing binary fails the test with that hint instead of skipping it.
package testenv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. It
// is taken from below the kernel's ephemeral range: a port in that range can
// be grabbed by any outgoing connection of a test running at the same time
// before the server under test binds it.
func FreePort(t testing.TB) int {
	t.Helper()
	return freePort(t, false)
}

// FreeUDPTCPPort returns a port free for both TCP and UDP on 127.0.0.1 (DNS).
func FreeUDPTCPPort(t testing.TB) int {
	t.Helper()
	return freePort(t, true)
}

func freePort(t testing.TB, udp bool) int {
	t.Helper()
	lo, hi := portRange()
	for i := 0; i < 500; i++ {
		p := lo + rand.IntN(hi-lo)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		if udp {
			u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				continue
			}
			u.Close()
		}
		return p
	}
	t.Fatal("no free port below the ephemeral range")
	return 0
}

// portRange is [lo, hi) just below the ephemeral port range.
func portRange() (int, int) {
	hi := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 12000 {
				hi = n
			}
		}
	}
	return hi - 12000, hi
}

// Terminate stops a child process: SIGTERM, then SIGKILL when it has not
// exited (exited is closed) after grace; it returns once it has exited.
func Terminate(p *os.Process, exited <-chan struct{}, grace time.Duration) {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = p.Kill()
		<-exited
	}
}

// Need fails the test when a program is missing, naming the install step.
func Need(t testing.TB, programs ...string) {
	t.Helper()
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s not found: run `make test-deps` (scripts/test-deps.sh installs the Debian packages)", p)
		}
	}
}

// WaitFor polls cond every few milliseconds until it returns true or the
// timeout passes; it fails the test with what on timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := Poll(context.Background(), timeout, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// Poll calls cond until it returns true, the timeout passes or ctx ends.
func Poll(ctx context.Context, timeout time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not reached after %s", timeout)
		case <-tick.C:
		}
	}
}
