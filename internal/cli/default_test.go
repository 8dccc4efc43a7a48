package cli_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/cli"
	"github.com/vmglue/vmglue/internal/monitor"
	"github.com/vmglue/vmglue/internal/testenv"
)

// The quick start: `vmglue serve` without any configuration file runs the
// monitor worker's file_sd output into its data directory; the sample hook
// run of VM 42 (make sample-event) adds its target to file_sd/node.json and
// the sample delete (make sample-delete) removes it.
func TestServeWithoutConfigWritesFileSD(t *testing.T) {
	dir := t.TempDir()
	bin, err := testenv.BuildBinary("github.com/vmglue/vmglue/cmd/vmglue", dir)
	if err != nil {
		t.Fatal(err)
	}
	hookBin, err := testenv.BuildBinary("github.com/vmglue/vmglue/cmd/vmglue-hook", dir)
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cmd := exec.Command(bin, "serve", "--nats-listen", addr, "--data-dir", data, "--metrics-listen", "")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir} // no VMGLUE_CONFIG
	var logs testenv.LogBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("serve log:\n%s", logs.String())
		}
	})
	file := filepath.Join(data, "file_sd", "node.json")
	targets := func() []string {
		entries, err := monitor.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.Targets...)
		}
		return out
	}
	testenv.WaitFor(t, 60*time.Second, "an empty "+file, func() bool {
		_, err := os.Stat(file)
		return err == nil
	})
	if got := targets(); len(got) != 0 {
		t.Fatalf("targets before any event: %v", got)
	}
	sample := func(name, word string) {
		t.Helper()
		xml, err := os.ReadFile(filepath.Join("..", "..", "testdata", "sample", name))
		if err != nil {
			t.Fatal(err)
		}
		h := exec.Command(hookBin)
		// With the hook's credential serve made, as make sample-event does.
		h.Env = []string{"VMGLUE_CLOUD=one", "VMGLUE_NATS_URL=nats://" + addr, "VMGLUE_SPOOL_DIR=" + t.TempDir(),
			"VMGLUE_NATS_USER=" + eventbus.RoleHook, "VMGLUE_NATS_PASSWORD_FILE=" + eventbus.CredentialPath(data, eventbus.RoleHook)}
		h.Stdin = bytes.NewReader(fmt.Appendf(nil, "%s %s", base64.StdEncoding.EncodeToString(xml), word))
		if out, err := h.CombinedOutput(); err != nil {
			t.Fatalf("vmglue-hook %s: %v: %s", word, err, out)
		}
	}
	sample("vm-42-running.xml", "running")
	testenv.WaitFor(t, 20*time.Second, "VM 42 in "+file, func() bool { return slices.Equal(targets(), []string{"10.0.0.42:9100"}) })
	sample("vm-42-done.xml", "done")
	testenv.WaitFor(t, 20*time.Second, "VM 42 gone from "+file, func() bool { return len(targets()) == 0 })
}

// config check without a file prints what serve runs then: the file_sd
// default.
func TestConfigCheckWithoutFileShowsFileSD(t *testing.T) {
	t.Setenv("VMGLUE_CONFIG", "")
	var out, errb bytes.Buffer
	if code := cli.Execute(context.Background(), []string{"config", "check"}, &out, &errb); code != 0 {
		t.Fatalf("config check: exit %d %s", code, errb.String())
	}
	for _, want := range []string{"monitor:", "file_sd:", "/file_sd\n", "name: node", "port: 9100"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("config check printed no %q:\n%s", want, out.String())
		}
	}
}
