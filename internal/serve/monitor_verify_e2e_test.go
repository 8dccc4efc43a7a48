package serve_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vmglue/vmglue/internal/testenv"
)

// `vmglue reconcile` reads the monitor worker's objects back: against the
// real Icinga2 a host deleted by hand is reported missing and restored by
// --apply. The reconcile process renders no file_sd files (its file_sd.dir
// is empty and stays so): it compares the entries with the shared bucket.
func TestReconcileMonitor(t *testing.T) {
	ic := testenv.StartIcinga(t)
	sd := t.TempDir()
	in := start(t, monitorConfig(t, ic, sd))
	opsDir := t.TempDir()
	cfgFile := writeFile(t, "vmglue.yaml", fmt.Sprintf(`workers:
  monitor:
    owner_id: e2e
    icinga: {url: %s, user: %s, password_file: %s, ca_file: %s, timeout: 2s, templates: [generic-host],
      label_templates: {web: web-server}, template_attribute: ROLE, vars: {os: "attribute:OS"}}
    file_sd: {dir: %s, jobs: [{name: node, port: 9100, labels: {os: "attribute:OS", role: "attribute:ROLE"}}]}
`, ic.URL, ic.User, ic.PasswordFile, ic.CAFile, opsDir))
	_, js := in.connect(t)
	hook(t, in, t.TempDir(), running(44, "web44", "127.0.0.44", "", time.Now().Unix()), "running")
	testenv.WaitFor(t, 20*time.Second, "file_sd entry of web44", func() bool {
		_, ok := sdTargets(t, filepath.Join(sd, "node.json"))["127.0.0.44:9100"]
		return ok
	})
	idle(t, js, "monitor")
	if ic.Host("web44") == nil {
		t.Fatal("no host web44")
	}

	if r := reconcile(t, in, cfgFile); r.Checked != 1 || r.Drifted != 0 || r.Errors != 0 {
		t.Fatalf("before any drift: %+v, want one.44 checked without drift", r)
	}
	if code, b := ic.Do("DELETE", "/v1/objects/hosts/web44?cascade=1", nil); code != 200 {
		t.Fatalf("delete by hand: %d %s", code, b)
	}
	if r := reconcile(t, in, cfgFile); !slices.Equal(r.findings("one.44"), []string{"missing host/web44"}) {
		t.Fatalf("after the host deleted by hand: %+v, want host/web44 missing", r)
	}
	if r := reconcile(t, in, cfgFile, "--apply"); r.Applied != 1 {
		t.Fatalf("reconcile --apply: %+v", r)
	}
	testenv.WaitFor(t, 20*time.Second, "host back after reconcile --apply", func() bool { return ic.Host("web44") != nil })
	if files, _ := filepath.Glob(filepath.Join(opsDir, "*")); len(files) != 0 {
		t.Fatalf("reconcile wrote into its file_sd.dir: %v", files)
	}
}
