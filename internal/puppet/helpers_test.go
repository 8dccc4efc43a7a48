package puppet

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
)

func TestMain(m *testing.M) {
	// Puppet Server runs a copy of this binary as its autosign policy.
	if vms := os.Getenv("VMGLUE_AUTOSIGN_HELPER_VMS"); vms != "" {
		os.Exit(autosignHelper(vms))
	}
	code := m.Run()
	testenv.StopPuppet()
	os.Exit(code)
}

// fakeVM is a VM whose default certname is <name>.cloud.test, created now:
// before the certificates the test signs for it.
func fakeVM(name, kind string, attrs map[string]string) *eventbus.VM {
	created := time.Now().UTC()
	return &eventbus.VM{Cloud: "one", CloudType: "opennebula", ID: "id-" + name, Name: name,
		Kind: kind, Attributes: attrs, Times: eventbus.Times{Created: &created}}
}

// uniq returns a fresh VM name: the stack is shared by test runs.
func uniq(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1e10)
}

func testConfig(s *testenv.PuppetStack) Config {
	return Config{CAURL: s.CAURL, PuppetDBURL: s.PuppetDBURL, Domain: "cloud.test",
		TLS: TLSConfig{CAFile: s.CAFile, CertFile: s.CertFile, KeyFile: s.KeyFile}}
}

func newTarget(t *testing.T, cfg Config) *Target {
	t.Helper()
	tg, err := New(cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel))
	if err != nil {
		t.Fatalf("new target: %v", err)
	}
	return tg
}

// closedURL is a real "down" server: a loopback port nobody listens on.
func closedURL(t *testing.T) string {
	return fmt.Sprintf("https://127.0.0.1:%d", testenv.FreePort(t))
}

// bootstrap runs `puppet ssl bootstrap` for certname in a fresh agent
// confdir/ssldir, with challenge (if any) in csr_attributes.yaml. It
// returns whether the agent got its certificate, and the CSR it sent.
func bootstrap(t *testing.T, s *testenv.PuppetStack, certname, challenge string) (bool, []byte) {
	t.Helper()
	dir, err := os.MkdirTemp(s.AgentsDir, certname+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if challenge != "" {
		attrs := fmt.Sprintf("custom_attributes:\n  1.2.840.113549.1.9.7: %q\n", challenge)
		if err := os.WriteFile(filepath.Join(dir, "etc", "csr_attributes.yaml"), []byte(attrs), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"ssl", "bootstrap", "--certname", certname, "--server", "127.0.0.1",
		"--serverport", s.ServerPort, "--ca_port", s.ServerPort, "--confdir", dir + "/etc",
		"--vardir", dir + "/var", "--ssldir", dir + "/ssl", "--logdir", dir + "/log", "--rundir", dir + "/run",
		"--waitforcert", "0", "--http_keepalive_timeout", "0", "--keylength", "2048"}
	start := time.Now()
	out, err := exec.Command("puppet", args...).CombinedOutput()
	signed := err == nil
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("puppet ssl bootstrap: %v", err)
	}
	t.Logf("puppet ssl bootstrap %s: signed=%v in %s", certname, signed, time.Since(start).Round(time.Millisecond))
	if !signed {
		t.Logf("agent output:\n%s\nserver log on %s:\n%s", out, certname, serverLogLines(s, certname))
	}
	csr, err := os.ReadFile(filepath.Join(dir, "ssl", "certificate_requests", certname+".pem"))
	if err != nil && !signed {
		t.Fatalf("agent csr: %v\n%s", err, out)
	}
	return signed, csr
}

// serverLogLines returns Puppet Server's log lines that mention certname,
// for failure messages (the log is gone once the stack restarts).
func serverLogLines(s *testenv.PuppetStack, certname string) string {
	data, err := os.ReadFile(s.ServerLog)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, certname) {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
