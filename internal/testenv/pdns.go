package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// pdnsSchema is the gsqlite3 schema shipped by pdns-backend-sqlite3.
const pdnsSchema = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"

// pdnsServer runs pdns_server (PowerDNS Authoritative 4.7) as root in the
// foreground with the gsqlite3 backend: pdns.conf, the database and the
// control socket in the directory (see DNS.socketDir).
//
// The README's PowerDNS section mirrors the dnsupdate lines of pdns.conf
// and the import-tsig-key and TSIG-ALLOW-DNSUPDATE commands below; the
// zones are native ones made by load-zone. The tests' own lines: the
// backend, address and socket directory, security-poll-suffix (no query
// leaves the machine), distributor-threads=1 (ready in about 0.1 s instead
// of 0.3 s), gsqlite3-pragma-synchronous=0 (no fsync per update: a test
// survives no power loss; the conformance suite takes 4.7 s instead of
// 7.5 s) and TSIG-ALLOW-AXFR (DNS.Zone transfers the zones, signed; vmglue
// never needs it).
type pdnsServer struct{}

// pdnsZones caches, per key name and zone list, the database with the
// zones loaded and their metadata set: each pdnsutil run takes
// about 0.1 s, so only the first server of a test binary pays for them, and
// every server then imports its own key (one run).
var pdnsZones = struct {
	sync.Mutex
	db map[string][]byte
}{db: map[string][]byte{}}

func (pdnsServer) name() string { return "pdns_server" }

func (pdnsServer) setup(t testing.TB, d *DNS) {
	t.Helper()
	Need(t, "pdnsutil", "sqlite3")
	host, port, _ := strings.Cut(d.Addr, ":")
	db := filepath.Join(d.Dir, "pdns.sqlite3")
	d.write(t, "pdns.conf", fmt.Sprintf(`launch=gsqlite3
gsqlite3-database=%s
local-address=%s
local-port=%s
socket-dir=%s
dnsupdate=yes
allow-dnsupdate-from=127.0.0.0/8,::1
security-poll-suffix=
distributor-threads=1
gsqlite3-pragma-synchronous=0
`, db, host, port, d.socketDir(t)))

	cacheKey := d.KeyName + " " + strings.Join(d.Zones, " ")
	pdnsZones.Lock()
	data, ok := pdnsZones.db[cacheKey]
	if !ok {
		data = pdnsBuildZones(t, d, db)
		pdnsZones.db[cacheKey] = data
	}
	pdnsZones.Unlock()
	if ok {
		d.write(t, "pdns.sqlite3", string(data))
	}
	d.Pdnsutil(t, "import-tsig-key", d.KeyName, d.Algorithm, d.Secret)
}

// pdnsBuildZones creates the database at db from the packaged schema,
// loads the zones and lets the key update them; it returns the database.
func pdnsBuildZones(t testing.TB, d *DNS, db string) []byte {
	t.Helper()
	schema, err := os.ReadFile(pdnsSchema)
	if err != nil {
		t.Fatalf("pdns schema: %v: run `make test-deps` (pdns-backend-sqlite3)", err)
	}
	cmd := exec.Command("sqlite3", db)
	cmd.Stdin = strings.NewReader("BEGIN;\n" + string(schema) + "\nCOMMIT;\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3 %s: %v: %s", db, err, out)
	}
	for i, z := range d.Zones {
		file := "zones/" + strings.TrimSuffix(z, ".") + ".zone"
		d.write(t, file, d.zoneFile(i))
		d.Pdnsutil(t, "load-zone", z, filepath.Join(d.Dir, file))
		d.Pdnsutil(t, "set-meta", z, "TSIG-ALLOW-DNSUPDATE", d.KeyName)
		d.Pdnsutil(t, "set-meta", z, "TSIG-ALLOW-AXFR", d.KeyName) // the tests' own: DNS.Zone
	}
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatalf("pdns database: %v", err)
	}
	return data
}

// Pdnsutil runs pdnsutil on a PowerDNS server's configuration (it fails
// the test on any other kind of server). Its output is shown only on
// failure, and its arguments never: import-tsig-key's hold the secret.
func (d *DNS) Pdnsutil(t testing.TB, args ...string) {
	t.Helper()
	if d.Kind != KindPowerDNS {
		t.Fatalf("pdnsutil: the server is %s, not pdns", d.Kind)
	}
	out, err := exec.Command("pdnsutil", append([]string{"--config-dir=" + d.Dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("pdnsutil %s: %v: %s", args[0], err, out)
	}
}

func (pdnsServer) command(d *DNS) *exec.Cmd {
	return exec.Command("pdns_server", "--config-dir="+d.Dir, "--guardian=no", "--daemon=no",
		"--disable-syslog", "--write-pid=no")
}

// ready waits until every zone answers from the database.
func (pdnsServer) ready(d *DNS, _ []byte) bool { return d.soaReady() }
