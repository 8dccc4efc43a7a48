package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// knotServer runs knotd (Knot DNS 3.2) as root in the foreground, with its
// configuration, zone files, journal and control socket in the directory
// (the socket elsewhere if the directory's path is too long for it).
//
// The README's Knot section mirrors the key:, acl: (vmglue-update),
// template: and zone: lines below; the transfer acl is the tests' own
// (DNS.Zone transfers the zones), vmglue itself never needs it.
type knotServer struct{}

func (knotServer) name() string { return "knotd" }

func (knotServer) setup(t testing.TB, d *DNS) {
	t.Helper()
	host, port, _ := strings.Cut(d.Addr, ":")
	text := fmt.Sprintf(`server:
    rundir: %q
    pidfile: %q
    listen: %s@%s
log:
  - target: stderr
    any: info
database:
    storage: %q
control:
    listen: %q
key:
  - id: %s
    algorithm: hmac-sha256
    secret: %s
acl:
  - id: vmglue-update
    key: %s
    action: update
  - id: test-transfer
    key: %s
    action: transfer
template:
  - id: default
    storage: %q
    file: "%%s.zone"
    journal-content: changes
    acl: [vmglue-update, test-transfer]
zone:
`, d.Dir, filepath.Join(d.Dir, "knot.pid"), host, port, filepath.Join(d.Dir, "db"),
		filepath.Join(d.socketDir(t), "knot.sock"), d.KeyName, d.Secret, d.KeyName, d.KeyName, filepath.Join(d.Dir, "zones"))
	for i, z := range d.Zones {
		text += fmt.Sprintf("  - domain: %s\n", z)
		d.write(t, "zones/"+strings.TrimSuffix(z, ".")+".zone", d.zoneFile(i))
	}
	d.write(t, "knot.conf", text)
	if err := os.MkdirAll(filepath.Join(d.Dir, "db"), 0o755); err != nil {
		t.Fatalf("knot database dir: %v", err) // without it every update is SERVFAIL
	}
}

func (knotServer) command(d *DNS) *exec.Cmd {
	return exec.Command("knotd", "-c", filepath.Join(d.Dir, "knot.conf"))
}

// ready waits until every zone answers: knotd loads zones in the background
// after it binds its port.
func (knotServer) ready(d *DNS, _ []byte) bool { return d.soaReady() }

// Knotc runs knotc against a Knot server's control socket and returns its
// output; it fails the test on any other kind of server.
func (d *DNS) Knotc(t testing.TB, args ...string) string {
	t.Helper()
	if d.Kind != KindKnot {
		t.Fatalf("knotc: the server is %s, not knot", d.Kind)
	}
	Need(t, "knotc")
	out, err := exec.Command("knotc", append([]string{"-c", filepath.Join(d.Dir, "knot.conf")}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("knotc %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
