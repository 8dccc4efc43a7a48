package hookcmd_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/hooks/spool"
)

// hookBin is the vmglue-hook binary built once by TestMain: the tests run it
// as a subprocess, the way OpenNebula's HEM does.
var hookBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vmglue-hook-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hookBin = filepath.Join(dir, "vmglue-hook")
	build := exec.Command("go", "build", "-o", hookBin, "github.com/vmglue/vmglue/cmd/vmglue-hook")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build vmglue-hook: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// hookRun is one execution of the hook binary.
type hookRun struct {
	stdin []byte            // HEM with ARGUMENTS_STDIN=yes
	args  []string          // HEM without ARGUMENTS_STDIN
	env   map[string]string // VMGLUE_* settings; nothing else is inherited but PATH
}

// hookResult is what the hook printed and returned.
type hookResult struct {
	code           int
	stdout, stderr string
	elapsed        time.Duration
}

// command prepares the hook process with a clean environment.
func (r hookRun) command(ctx context.Context) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, hookBin, r.args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range r.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = bytes.NewReader(r.stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

// run executes the hook and waits for it (at most 30s).
func (r hookRun) run(t *testing.T) hookResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd, stdout, stderr := r.command(ctx)
	start := time.Now()
	err := cmd.Run()
	res := hookResult{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	if cmd.ProcessState == nil {
		t.Fatalf("run vmglue-hook: %v", err)
	}
	res.code = cmd.ProcessState.ExitCode()
	return res
}

// env returns the hook settings for a NATS URL and a spool directory.
func env(url, spoolDir string, extra ...string) map[string]string {
	m := map[string]string{"VMGLUE_NATS_URL": url, "VMGLUE_SPOOL_DIR": spoolDir, "VMGLUE_CLOUD": "one"}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// vmXML is a small VM document, pretty-printed as HEM passes it. ACTIVE VMs
// (state 3) get a HISTORY record on host "kvm1"; distinct (id, state, lcm,
// stime) give distinct events.
func vmXML(id, state, lcm int, stime int64) string {
	history := "<HISTORY_RECORDS/>"
	if state == 3 {
		history = fmt.Sprintf(`<HISTORY_RECORDS>
    <HISTORY>
      <OID>%d</OID>
      <SEQ>0</SEQ>
      <HOSTNAME>kvm1</HOSTNAME>
      <STIME>%d</STIME>
      <ETIME>0</ETIME>
    </HISTORY>
  </HISTORY_RECORDS>`, id, stime+10)
	}
	return fmt.Sprintf(`<VM>
  <ID>%d</ID>
  <UID>0</UID>
  <GID>0</GID>
  <UNAME>oneadmin</UNAME>
  <GNAME>oneadmin</GNAME>
  <NAME>web-%d</NAME>
  <LAST_POLL>0</LAST_POLL>
  <STATE>%d</STATE>
  <LCM_STATE>%d</LCM_STATE>
  <STIME>%d</STIME>
  <ETIME>0</ETIME>
  <TEMPLATE>
    <NIC>
      <NIC_ID>0</NIC_ID>
      <IP><![CDATA[10.0.%d.%d]]></IP>
      <MAC><![CDATA[02:00:0a:00:00:01]]></MAC>
      <NETWORK><![CDATA[public]]></NETWORK>
    </NIC>
  </TEMPLATE>
  <USER_TEMPLATE>
    <HOSTNAME><![CDATA[web-%d.cloud.test]]></HOSTNAME>
  </USER_TEMPLATE>
  %s
</VM>`, id, id, state, lcm, stime, id/250, id%250+1, id, history)
}

// runningInput is the stdin HEM writes for a RUNNING VM: "<base64> running",
// no trailing newline.
func runningInput(id int) []byte {
	return []byte(b64(vmXML(id, 3, 3, 1700000000+int64(id))) + " running")
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// closedURL returns a NATS URL on a loopback port where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	return "nats://" + natstest.FreeAddr(t)
}

// stored returns the events in the stream of the server at url.
func stored(t *testing.T, url string) []eventbus.Event {
	t.Helper()
	_, js := natstest.Connect(t, url)
	return natstest.Events(t, js)
}

// storedAt returns the id of the newest event on an exact subject.
func storedAt(t *testing.T, url, subject string) string {
	t.Helper()
	_, js := natstest.Connect(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatalf("no event on %s: %v", subject, err)
	}
	var hdrID string
	if m.Header != nil {
		hdrID = m.Header.Get(jetstream.MsgIDHeader)
	}
	ev, err := eventbus.Unmarshal(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if hdrID != ev.ID {
		t.Errorf("%s: Nats-Msg-Id %q, event id %q", subject, hdrID, ev.ID)
	}
	return ev.ID
}

// spooled lists the spool directory (missing is empty).
func spooled(t *testing.T, dir string) []spool.Entry {
	t.Helper()
	es, err := spool.New(dir).List()
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// oneLine checks that s is exactly one line, starting with prefix.
func oneLine(t *testing.T, s, prefix string) {
	t.Helper()
	if strings.Count(s, "\n") != 1 || !strings.HasSuffix(s, "\n") || !strings.HasPrefix(s, prefix) {
		t.Errorf("stderr %q: want one line starting with %q", s, prefix)
	}
}
