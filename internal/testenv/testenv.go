// Package testenv starts the real servers vmglue's tests run against (BIND,
// HAProxy, Puppet Server, PuppetDB) on loopback, as children of the test
// process, and waits for their true readiness. The Debian packages are
// installed by scripts/test-deps.sh (make test-deps, part of make test); a
// missing binary fails the test with that hint instead of skipping it.
package testenv

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeUDPTCPPort returns a port free for both TCP and UDP on 127.0.0.1 (DNS).
func FreeUDPTCPPort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		p := FreePort(t)
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			u.Close()
			return p
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
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
