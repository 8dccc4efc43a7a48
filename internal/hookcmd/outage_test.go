package hookcmd_test

import (
	"context"
	"fmt"
	"github.com/vmglue/vmglue/internal/hookcmd"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
)

var spooledRE = regexp.MustCompile(`^vmglue-hook: spooled (\S+) \((.+)\)\n$`)

// mustSpool checks a run that spooled its event and returns the event id.
func mustSpool(t *testing.T, res hookResult, reason string) string {
	t.Helper()
	m := spooledRE.FindStringSubmatch(res.stderr)
	if res.code != 0 || m == nil {
		t.Fatalf("exit %d, stderr %q: want exit 0 and \"vmglue-hook: spooled <id> (<reason>)\"", res.code, res.stderr)
	}
	if !strings.Contains(m[2], reason) {
		t.Errorf("reason %q, want it to mention %q", m[2], reason)
	}
	return m[1]
}

// TestHookSpoolThenFlush: NATS unreachable, the event is spooled; the next
// run against a live server sends it first, and it is stored once.
func TestHookSpoolThenFlush(t *testing.T) {
	spoolDir := filepath.Join(t.TempDir(), "spool")
	res := hookRun{stdin: runningInput(10), env: env(closedURL(t), spoolDir)}.run(t)
	id := mustSpool(t, res, "nats unreachable")
	if es := spooled(t, spoolDir); len(es) != 1 || es[0].ID != id {
		t.Fatalf("spool %v, want the one event %s", es, id)
	}
	fi, err := os.Stat(spoolDir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("spool dir: %v, %v; want mode 0700", fi, err)
	}

	srv := natstest.Start(t)
	// The same event again: the flush sends the spooled copy, then this
	// one is a duplicate.
	res = hookRun{stdin: runningInput(10), env: env(srv.URL, spoolDir)}.run(t)
	if res.code != 0 {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	oneLine(t, res.stderr, "vmglue-hook: duplicate "+id+" (sent 1 spooled)")
	if evs := stored(t, srv.URL); len(evs) != 1 || evs[0].ID != id {
		t.Fatalf("stored %d events, want only %s", len(evs), id)
	}
	if es := spooled(t, spoolDir); len(es) != 0 {
		t.Errorf("%d events left in the spool", len(es))
	}
}

// TestHookFlushOnly: the spool flush timer's run (-flush, no input) sends
// the spool with the hook's own settings; the spooled line says how many
// wait, and an invalid VMGLUE_HOOK_TIMEOUT does not lose the event.
func TestHookFlushOnly(t *testing.T) {
	spoolDir := filepath.Join(t.TempDir(), "spool")
	down := closedURL(t)
	var ids []string
	for i := range 2 {
		res := hookRun{stdin: runningInput(20 + i), env: env(down, spoolDir, "VMGLUE_HOOK_TIMEOUT", "5x")}.run(t)
		ids = append(ids, mustSpool(t, res, "nats unreachable"))
		if want := fmt.Sprintf("; %d waiting, oldest ", i+1); !strings.Contains(res.stderr, want) {
			t.Errorf("stderr %q does not say %q", res.stderr, want)
		}
		if !strings.Contains(res.stderr, "(config: VMGLUE_HOOK_TIMEOUT") {
			t.Errorf("stderr %q does not name the invalid VMGLUE_HOOK_TIMEOUT", res.stderr)
		}
	}
	res := hookRun{args: []string{"-flush"}, env: env(down, spoolDir)}.run(t)
	if res.code != hookcmd.ExitLost || !strings.HasPrefix(res.stderr, "vmglue-hook: flush: sent 0, not connected: nats unreachable; 2 waiting") {
		t.Fatalf("flush with NATS down: exit %d, stderr %q", res.code, res.stderr)
	}
	srv := natstest.Start(t)
	res = hookRun{args: []string{"-flush"}, env: env(srv.URL, spoolDir)}.run(t)
	if res.code != 0 {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	oneLine(t, res.stderr, "vmglue-hook: flush: sent 2")
	evs := stored(t, srv.URL)
	if len(evs) != 2 || evs[0].ID != ids[0] || evs[1].ID != ids[1] {
		t.Fatalf("stored %+v, want %v in order", evs, ids)
	}
	if es := spooled(t, spoolDir); len(es) != 0 {
		t.Errorf("%d events left in the spool", len(es))
	}
}

// TestHookOutage stops the server, fires 20 hooks concurrently (HEM runs up
// to 10 at once), restarts the server on the same address and store, and
// fires one more: all 21 events are stored once, oldest spooled first.
func TestHookOutage(t *testing.T) {
	store := t.TempDir()
	srv := natstest.StartIn(t, store, "127.0.0.1:0")
	url, addr := srv.URL, strings.TrimPrefix(srv.URL, "nats://")
	srv.Stop()

	spoolDir := filepath.Join(t.TempDir(), "spool")
	want := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			res := hookRun{stdin: runningInput(100 + i), env: env(url, spoolDir, "VMGLUE_HOOK_TIMEOUT", "2s")}.run(t)
			m := spooledRE.FindStringSubmatch(res.stderr)
			if res.code != 0 || m == nil {
				t.Errorf("hook %d during the outage: exit %d, stderr %q", i, res.code, res.stderr)
				return
			}
			mu.Lock()
			want[m[1]] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	if es := spooled(t, spoolDir); len(es) != 20 || len(want) != 20 {
		t.Fatalf("%d spooled, %d distinct ids, want 20", len(es), len(want))
	}
	order := spooled(t, spoolDir)

	srv = natstest.StartIn(t, store, addr)
	res := hookRun{stdin: runningInput(200), env: env(srv.URL, spoolDir)}.run(t)
	m := publishedRE.FindStringSubmatch(strings.Replace(res.stderr, " (sent 20 spooled)", "", 1))
	if res.code != 0 || m == nil || !strings.Contains(res.stderr, "(sent 20 spooled)") {
		t.Fatalf("hook after the outage: exit %d, stderr %q", res.code, res.stderr)
	}
	want[m[1]] = true

	evs := stored(t, srv.URL)
	seen := map[string]int{}
	for _, ev := range evs {
		seen[ev.ID]++
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("event %s stored %d times, want once", id, seen[id])
		}
	}
	if len(evs) != 21 {
		t.Errorf("%d events stored, want 21", len(evs))
	}
	for i := 0; i < len(order) && i < len(evs); i++ {
		if evs[i].ID != order[i].ID {
			t.Errorf("stored event %d is %s, want spool order %s", i, evs[i].ID, order[i].ID)
		}
	}
	if es := spooled(t, spoolDir); len(es) != 0 {
		t.Errorf("%d events left in the spool", len(es))
	}
}

// silentServer accepts TCP connections and never answers, like a hung NATS.
// It returns its URL and a channel that gets a value per accepted connection.
func silentServer(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 16)
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			accepted <- struct{}{}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "nats://" + l.Addr().String(), accepted
}

func TestHookTimeout(t *testing.T) {
	url, _ := silentServer(t)
	spoolDir := t.TempDir()
	res := hookRun{stdin: runningInput(20), env: env(url, spoolDir, "VMGLUE_HOOK_TIMEOUT", "300ms")}.run(t)
	mustSpool(t, res, "timeout")
	if res.elapsed > 5*time.Second {
		t.Errorf("took %s with a 300ms budget", res.elapsed)
	}
	if es := spooled(t, spoolDir); len(es) != 1 {
		t.Errorf("%d spooled, want 1", len(es))
	}
}

// TestHookSIGTERM: HEM's TIMEOUT sends SIGTERM before the ack; the hook
// spools the event and exits 0.
func TestHookSIGTERM(t *testing.T) {
	url, accepted := silentServer(t)
	spoolDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd, _, stderr := hookRun{stdin: runningInput(21), env: env(url, spoolDir, "VMGLUE_HOOK_TIMEOUT", "60s")}.command(ctx)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-accepted: // the hook is waiting for the server: signal it now
	case <-ctx.Done():
		t.Fatal("the hook never connected")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	mustSpool(t, hookResult{code: cmd.ProcessState.ExitCode(), stderr: stderr.String()}, "terminated")
	if es := spooled(t, spoolDir); len(es) != 1 {
		t.Errorf("%d spooled, want 1", len(es))
	}
}

// TestHookNoStream: a NATS without vmglue's stream (vmglue serve never ran
// against it) cannot take the event: spool it.
func TestHookNoStream(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.URL)
	if err := js.DeleteStream(context.Background(), eventbus.StreamEvents); err != nil {
		t.Fatal(err)
	}
	spoolDir := t.TempDir()
	res := hookRun{stdin: runningInput(22), env: env(srv.URL, spoolDir)}.run(t)
	mustSpool(t, res, "not provisioned")
	if es := spooled(t, spoolDir); len(es) != 1 {
		t.Errorf("%d spooled, want 1", len(es))
	}
}

// TestHookLost: neither NATS nor the spool can take the event: exit 1.
func TestHookLost(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	res := hookRun{stdin: runningInput(23), env: env(closedURL(t), filepath.Join(file, "spool"))}.run(t)
	if res.code != 1 {
		t.Fatalf("exit %d, want 1; stderr %q", res.code, res.stderr)
	}
	oneLine(t, res.stderr, "vmglue-hook: lost one-23-running-")
}
