package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PuppetBootstrap runs `puppet ssl bootstrap` for certname against the
// stack s in a fresh agent confdir/ssldir, with challenge (if any) in
// csr_attributes.yaml and extra appended to the agent's arguments (e.g.
// "--dns_alt_names", "puppet"). It returns whether the agent got its
// certificate, and the CSR it sent.
func PuppetBootstrap(t testing.TB, s *PuppetStack, certname, challenge string, extra ...string) (bool, []byte) {
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
	out, err := exec.Command("puppet", append(args, extra...)...).CombinedOutput()
	signed := err == nil
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("puppet ssl bootstrap: %v", err)
	}
	t.Logf("puppet ssl bootstrap %s: signed=%v in %s", certname, signed, time.Since(start).Round(time.Millisecond))
	if !signed {
		t.Logf("agent output:\n%s\nserver log on %s:\n%s", out, certname, s.ServerLogLines(certname))
	}
	csr, err := os.ReadFile(filepath.Join(dir, "ssl", "certificate_requests", certname+".pem"))
	if err != nil && !signed {
		t.Fatalf("agent csr: %v\n%s", err, out)
	}
	return signed, csr
}

// ServerLogLines returns Puppet Server's log lines that mention certname,
// for failure messages and for the autosign policy's reasons.
func (s *PuppetStack) ServerLogLines(certname string) string {
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

// UseAutosign makes Puppet Server run the executable policy for every CSR
// until the test ends. The target file is the stack's, shared by every test
// process using it: UseAutosign holds an exclusive flock on it for the whole
// test (other tests wait) and puts the previous target back at the end.
// policy and its directory must be reachable by the puppet user.
func UseAutosign(t testing.TB, s *PuppetStack, policy string) {
	t.Helper()
	lock, err := os.OpenFile(s.AutosignTargetFile+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		t.Fatalf("lock the autosign target: %v", err)
	}
	t.Cleanup(func() { lock.Close() }) // closing releases the lock
	old, err := os.ReadFile(s.AutosignTargetFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(s.AutosignTargetFile, old, 0o644); err != nil {
			t.Errorf("restore the autosign target: %v", err)
		}
	})
	if err := os.WriteFile(s.AutosignTargetFile, []byte(policy+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// PolicyDir makes a directory under the stack's agents room that the puppet
// user can enter, removed when the test ends.
func (s *PuppetStack) PolicyDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp(s.AgentsDir, "autosign-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
