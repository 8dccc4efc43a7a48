package deb_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestInstallPurge installs both packages with apt in a fresh Debian 12 root
// as the README says, runs them, lets OpenNebula's oneadmin appear, then
// purges them: what the install added goes, except events the hook spooled.
func TestInstallPurge(t *testing.T) {
	t.Parallel() // beside lintian
	vmglueDeb, hookDeb, describe := packages(t)
	c := newChroot(t)
	before := c.snapshot()
	run(t, "cp", vmglueDeb, hookDeb, c.path("/tmp"))

	out := c.must("", "cd /tmp && apt -o Dpkg::Use-Pty=0 install -y ./vmglue_*.deb ./vmglue-hook_*.deb 2>&1")
	t.Logf("apt install:\n%s", out)
	if !strings.Contains(out, "no oneadmin user yet") {
		t.Errorf("install without oneadmin says nothing about it")
	}

	if got := strings.TrimSpace(c.must("", "vmglue --version")); got != "vmglue version "+describe {
		t.Errorf("vmglue --version = %q, want %q", got, "vmglue version "+describe)
	}
	uid, _ := c.ids("vmglue")
	for _, line := range c.lines("/etc/passwd") {
		if f := strings.Split(line, ":"); f[0] == "vmglue" && (f[5] != "/var/lib/vmglue" || f[6] != "/usr/sbin/nologin" || len(uid) > 3) {
			t.Errorf("vmglue user %q, want a system user with home /var/lib/vmglue and no shell", line)
		}
	}
	owners := map[string]string{
		"/var/lib/vmglue":         "vmglue:vmglue 750",
		"/etc/vmglue/vmglue.yaml": "root:root 644",
		"/etc/vmglue/hook.env":    "root:root 640", // no oneadmin yet
		"/usr/bin/vmglue":         "root:root 755",
		"/usr/bin/vmglue-hook":    "root:root 755",
		"/var/lib/one":            "absent", // OpenNebula's, never made by vmglue-hook
	}
	checkOwners(t, c, owners)
	// The packaged config validates, read by the user that runs serve.
	if out := c.must("vmglue", "vmglue config check -c /etc/vmglue/vmglue.yaml"); !strings.Contains(out, "workers: {}") {
		t.Errorf("config check as vmglue:\n%s", out)
	}
	if enabled, _ := filepath.Glob(c.path("/etc/systemd/system/*/vmglue*")); len(enabled) > 0 {
		t.Errorf("the install enabled %v, want nothing enabled before the config is edited", enabled)
	}
	checkInstalledPaths(t, c)

	// OpenNebula arrives after the hook: its oneadmin, then a reconfigure.
	c.must("", "adduser --system --group --home /var/lib/one oneadmin && dpkg-reconfigure vmglue-hook")
	owners["/etc/vmglue/hook.env"] = "root:oneadmin 640"
	owners["/var/lib/one/vmglue/spool"] = "oneadmin:oneadmin 700"
	delete(owners, "/var/lib/one")
	checkOwners(t, c, owners)

	// An upgrade (here a reinstall: postinst configure with the old version)
	// keeps the administrator's edit, the user and the owners.
	c.must("", "echo '# edited' >> /etc/vmglue/vmglue.yaml")
	c.must("", "cd /tmp && apt -o Dpkg::Use-Pty=0 install --reinstall -y ./vmglue_*.deb ./vmglue-hook_*.deb 2>&1")
	if b, err := os.ReadFile(c.path("/etc/vmglue/vmglue.yaml")); err != nil || !strings.HasSuffix(string(b), "# edited\n") {
		t.Errorf("the reinstall replaced the edited /etc/vmglue/vmglue.yaml (%v)", err)
	}
	checkOwners(t, c, owners)

	// A hook run as HEM makes it: oneadmin, hook.env's environment, no
	// network (unshare --net): the event goes to the spool, exit 0.
	xml, err := os.ReadFile(filepath.Join(repo, "testdata/sample/vm-42-running.xml"))
	if err != nil {
		t.Fatal(err)
	}
	stdin := strings.NewReader(base64.StdEncoding.EncodeToString(xml) + " running")
	out, err = c.sh("oneadmin", "set -a; . /etc/vmglue/hook.env; set +a; VMGLUE_HOOK_TIMEOUT=2s exec vmglue-hook", stdin)
	if err != nil || !strings.Contains(out, "vmglue-hook: spooled ") {
		t.Fatalf("hook run as oneadmin: %q (%v), want spooled", out, err)
	}
	spooled, _ := filepath.Glob(c.path("/var/lib/one/vmglue/spool/*.json"))
	if len(spooled) != 1 {
		t.Fatalf("spool holds %v, want one event", spooled)
	}

	// What serve keeps (the embedded NATS server's data) goes with purge.
	c.must("vmglue", "mkdir /var/lib/vmglue/jetstream && echo x > /var/lib/vmglue/jetstream/data")
	out = c.must("", "apt -o Dpkg::Use-Pty=0 purge -y vmglue vmglue-hook 2>&1")
	t.Logf("apt purge:\n%s", out)
	if !strings.Contains(out, "still holds unsent events: kept") {
		t.Errorf("purge with a spooled event does not say it kept it")
	}
	c.checkNothingRunning()

	// What purge left: OpenNebula's oneadmin and the unsent event, no more.
	kept := "/var/lib/one/vmglue/spool/" + filepath.Base(spooled[0])
	after := c.snapshot()
	var added, removed, changed []string
	for p, v := range after {
		switch w, ok := before[p]; {
		case !ok:
			if !strings.Contains(p, "oneadmin") && p != "/var/lib/one" && p != "/var/lib/one/vmglue" &&
				p != "/var/lib/one/vmglue/spool" && p != kept {
				added = append(added, p)
			}
		case w != v:
			changed = append(changed, p+": "+w+" -> "+v)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			removed = append(removed, p)
		}
	}
	sort.Strings(added)
	sort.Strings(removed)
	sort.Strings(changed)
	if len(added)+len(removed)+len(changed) > 0 {
		t.Errorf("purge did not restore the root:\nadded %v\nremoved %v\nchanged %v", added, removed, changed)
	}
	if _, ok := after[kept]; !ok {
		t.Errorf("purge lost the spooled event %s", kept)
	}
	for _, f := range []string{"/var/lib/dpkg/statoverride"} {
		if got := c.lines(f); len(got) > 1 || got[0] != "" {
			t.Errorf("%s after purge: %q, want empty", f, got)
		}
	}
}

func checkOwners(t *testing.T, c *chroot, owners map[string]string) {
	t.Helper()
	for p, want := range owners {
		if got := c.owner(p); got != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}
}

// checkInstalledPaths: every onehook template and unit names a program the
// packages installed.
func checkInstalledPaths(t *testing.T, c *chroot) {
	t.Helper()
	templates, _ := filepath.Glob(c.path("/usr/share/vmglue/onehook/*.tmpl"))
	units, _ := filepath.Glob(c.path("/lib/systemd/system/vmglue*.service"))
	if len(templates) == 0 || len(units) != 2 {
		t.Fatalf("installed templates %v, units %v", templates, units)
	}
	for _, f := range append(templates, units...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, "=")
			k = strings.TrimSpace(k)
			if !ok || (k != "COMMAND" && k != "ExecStart") {
				continue
			}
			found = true
			prog := strings.Fields(v)[0]
			if fi, err := os.Stat(c.path(prog)); err != nil || fi.Mode().Perm()&0o111 == 0 || !strings.HasPrefix(prog, "/usr/bin/") {
				t.Errorf("%s runs %s: not an installed /usr/bin program (%v)", f, prog, err)
			}
		}
		if !found {
			t.Errorf("%s names no program", f)
		}
	}
}
