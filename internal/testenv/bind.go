package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// bindServer runs named (BIND 9) as root in the foreground (-g), with an
// rndc control channel of its own. The README's BIND section mirrors the
// key and zone statements below.
type bindServer struct {
	rndcPort int
}

func (*bindServer) name() string { return "named" }

func (s *bindServer) setup(t testing.TB, d *DNS) {
	t.Helper()
	_, port, _ := strings.Cut(d.Addr, ":")
	rndcKey := fmt.Sprintf("key \"rndckey\" { algorithm hmac-sha256; secret %q; };\n", newSecret(t))
	in := func(name string) string { return strconv.Quote(filepath.Join(d.Dir, name)) }
	text := fmt.Sprintf("key %q { algorithm hmac-sha256; secret %q; };\n", d.KeyName, d.Secret) + rndcKey
	text += fmt.Sprintf(`options {
	directory %s;
	pid-file %s;
	session-keyfile %s;
	managed-keys-directory %s;
	dump-file %s;
	statistics-file %s;
	listen-on port %s { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	allow-query { 127.0.0.1; };
	allow-transfer { key %q; };
	dnssec-validation no;
	notify no;
	max-journal-size unlimited; // JournalChanges reads every change back
};
controls { inet 127.0.0.1 port %d allow { 127.0.0.1; } keys { "rndckey"; }; };
`, strconv.Quote(d.Dir), in("named.pid"), in("session.key"), strconv.Quote(d.Dir),
		in("cache_dump.db"), in("named.stats"), port, d.KeyName, s.rndcPort)
	for i, z := range d.Zones {
		file := "zones/db." + strings.TrimSuffix(z, ".")
		text += fmt.Sprintf("zone %q { type primary; file %q; allow-update { key %q; }; };\n", z, file, d.KeyName)
		d.write(t, file, d.zoneFile(i))
	}
	d.write(t, "named.conf", text)
	d.write(t, "rndc.key", rndcKey)
}

func (*bindServer) command(d *DNS) *exec.Cmd {
	// ulimit -c 0: named can abort during startup and write a large core file.
	return exec.Command("sh", "-c", `ulimit -c 0; exec named -g -c "$0"`, filepath.Join(d.Dir, "named.conf"))
}

// ready waits for the "running" line: named answers queries before its
// startup is over, and a SIGTERM in between can make it abort.
func (*bindServer) ready(_ *DNS, log []byte) bool {
	return bytes.Contains(log, []byte(" running\n"))
}

// Rndc runs rndc against a BIND's control channel and returns its output;
// it fails the test on any other kind of server.
func (d *DNS) Rndc(t testing.TB, args ...string) string {
	t.Helper()
	s, ok := d.server.(*bindServer)
	if !ok {
		t.Fatalf("rndc: the server is %s, not bind", d.Kind)
	}
	Need(t, "rndc")
	a := append([]string{"-s", "127.0.0.1", "-p", fmt.Sprint(s.rndcPort), "-k", filepath.Join(d.Dir, "rndc.key")}, args...)
	out, err := exec.Command("rndc", a...).CombinedOutput()
	if err != nil {
		t.Fatalf("rndc %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// JournalChanges reads the journal of a BIND zone (named-journalprint) and
// returns every change other than the SOA's, in order, as "add " or "del "
// and the record as Zone lists it: what the server really changed, update
// by update (a record re-added with the same data is not a change). It
// fails the test on any other kind of server; a zone never updated has no
// journal and no changes.
func (d *DNS) JournalChanges(t testing.TB, zone string) []string {
	t.Helper()
	if _, ok := d.server.(*bindServer); !ok {
		t.Fatalf("journal: the server is %s, not bind", d.Kind)
	}
	Need(t, "named-journalprint")
	jnl := filepath.Join(d.Dir, "zones", "db."+strings.TrimSuffix(zone, ".")+".jnl")
	if _, err := os.Stat(jnl); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	out, err := exec.Command("named-journalprint", jnl).Output()
	if err != nil {
		t.Fatalf("named-journalprint %s: %v", jnl, err)
	}
	var changes []string
	for _, line := range strings.Split(string(out), "\n") {
		// add web1.cloud.test. 60 IN A 10.0.0.1
		op, text, _ := strings.Cut(line, " ")
		if op != "add" && op != "del" {
			continue
		}
		rr, err := dns.NewRR(text)
		if err != nil || rr == nil {
			t.Fatalf("named-journalprint %s: line %q: %v", jnl, line, err)
		}
		if rr.Header().Rrtype == dns.TypeSOA {
			continue
		}
		changes = append(changes, op+" "+recordText(rr))
	}
	return changes
}
