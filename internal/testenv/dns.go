package testenv

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The kinds of DNS server StartDNS runs, each from its Debian package.
const (
	KindBIND     = "bind" // BIND 9 (bind9)
	KindKnot     = "knot" // Knot DNS (knot)
	KindPowerDNS = "pdns" // PowerDNS Authoritative (pdns-server, pdns-backend-sqlite3)
)

// DNSKinds lists every kind, for tests that run against each server
// (subtests named after the kind).
var DNSKinds = []string{KindBIND, KindKnot, KindPowerDNS}

// DefaultZones are the zones a DNS server serves when DNSOptions.Zones is
// empty: the forward zone cloud.test., the IPv4 reverse zone of 10.0.0.0/8,
// and the IPv6 reverse zones of the ULA range fd00::/8 and of the
// documentation prefix 2001:db8::/32.
var DefaultZones = []string{
	"cloud.test.",
	"10.in-addr.arpa.",
	"d.f.ip6.arpa.",
	"8.b.d.0.1.0.0.2.ip6.arpa.",
}

// DNSOptions configure StartDNS. The zero value is ready to use.
type DNSOptions struct {
	// Zones are the primary zones, each updatable with the TSIG key. The
	// first one also holds ns1 (127.0.0.1), the NS of every zone.
	// Default: DefaultZones.
	Zones []string
	// KeyName is the TSIG key name. Default "vmglue-test".
	KeyName string
}

// BINDOptions is the name DNSOptions had when BIND was the only server.
type BINDOptions = DNSOptions

// BIND is the name DNS had when BIND was the only server.
type BIND = DNS

// DNS is an authoritative DNS server started by StartDNS: a child of the
// test process listening on 127.0.0.1 (UDP and TCP), serving Zones as
// primary zones that accept RFC 2136 updates signed with the TSIG key.
// Every kind serves the same zone content, so one test runs on all three.
type DNS struct {
	Kind       string   // KindBIND, KindKnot or KindPowerDNS
	Addr       string   // "127.0.0.1:port" for DNS
	KeyName    string   // TSIG key name (without the final dot)
	Algorithm  string   // "hmac-sha256"
	Secret     string   // base64 TSIG secret
	SecretPath string   // a file holding only Secret (for a secret_file setting)
	Zones      []string // fully qualified zone names
	Dir        string   // working directory: configuration, zone data, log

	server  dnsServer
	sockDir string // for control sockets: Dir, unless its path is too long
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// dnsServer is what differs between the kinds of server.
type dnsServer interface {
	// name is the program, for messages and Need.
	name() string
	// setup writes the configuration and the zone data into d.Dir.
	setup(t testing.TB, d *DNS)
	// command is the server in the foreground, logging to stderr.
	command(d *DNS) *exec.Cmd
	// ready reports whether the server is ready to take updates.
	ready(d *DNS, log []byte) bool
}

// StartDNS writes a fresh configuration of the given kind with a random
// TSIG key in a private directory, starts the server on a free loopback
// port (never the Debian service) and waits until it is ready.
// t.Cleanup stops it.
func StartDNS(t testing.TB, kind string, opts DNSOptions) *DNS {
	t.Helper()
	d := &DNS{
		Kind:      kind,
		Addr:      fmt.Sprintf("127.0.0.1:%d", FreeUDPTCPPort(t)),
		KeyName:   strings.TrimSuffix(opts.KeyName, "."),
		Algorithm: "hmac-sha256",
		Secret:    newSecret(t),
		Dir:       t.TempDir(),
	}
	switch kind {
	case KindBIND:
		d.server = &bindServer{rndcPort: FreePort(t)}
	case KindKnot:
		d.server = knotServer{}
	case KindPowerDNS:
		d.server = pdnsServer{}
	default:
		t.Fatalf("testenv: unknown DNS server kind %q (want one of %v)", kind, DNSKinds)
	}
	if d.KeyName == "" {
		d.KeyName = "vmglue-test"
	}
	zones := opts.Zones
	if len(zones) == 0 {
		zones = DefaultZones
	}
	for _, z := range zones {
		d.Zones = append(d.Zones, dns.CanonicalName(z))
	}
	d.SecretPath = filepath.Join(d.Dir, "tsig.secret")
	d.logPath = filepath.Join(d.Dir, d.server.name()+".log")
	d.write(t, "tsig.secret", d.Secret+"\n")
	d.server.setup(t, d)
	t.Cleanup(d.Stop)
	d.Start(t)
	return d
}

// StartBIND is StartDNS of a BIND.
func StartBIND(t testing.TB, opts DNSOptions) *DNS {
	t.Helper()
	return StartDNS(t, KindBIND, opts)
}

// socketDir is a directory for the server's control socket: Dir, or a
// short one (removed by t.Cleanup) where Dir is too long for a Unix socket
// path (108 bytes; knotd and pdns_server refuse to start without theirs).
func (d *DNS) socketDir(t testing.TB) string {
	t.Helper()
	if d.sockDir != "" {
		return d.sockDir
	}
	d.sockDir = d.Dir
	if len(d.Dir) > 80 {
		dir, err := os.MkdirTemp("", "dns")
		if err != nil {
			t.Fatalf("%s socket dir: %v", d.Kind, err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		d.sockDir = dir
	}
	return d.sockDir
}

func newSecret(t testing.TB) string {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatalf("tsig secret: %v", err)
	}
	return base64.StdEncoding.EncodeToString(k)
}

// zoneFile is the content of zone i (SOA serial 1, NS ns1 of the first
// zone, which also holds ns1's address), the same for every kind.
func (d *DNS) zoneFile(i int) string {
	ns := "ns1." + d.Zones[0]
	text := fmt.Sprintf("$TTL 60\n@ IN SOA %s hostmaster.%s 1 3600 600 86400 60\n  IN NS %s\n", ns, d.Zones[0], ns)
	if i == 0 {
		text += "ns1 IN A 127.0.0.1\n"
	}
	return text
}

func (d *DNS) write(t testing.TB, name, text string) {
	t.Helper()
	p := filepath.Join(d.Dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatalf("%s dir: %v", d.Kind, err)
	}
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
}

// Start starts the server again after Stop, on the same port with the same
// zone data: every update made before survives (journals, database).
func (d *DNS) Start(t testing.TB) {
	t.Helper()
	if d.cmd != nil {
		t.Fatalf("%s: already running", d.Kind)
	}
	Need(t, d.server.name())
	_ = os.Remove(d.logPath) // a stale readiness line must not count
	log, err := os.Create(d.logPath)
	if err != nil {
		t.Fatalf("%s log: %v", d.Kind, err)
	}
	defer log.Close()
	cmd := d.server.command(d)
	cmd.Dir = d.Dir
	cmd.Stdout, cmd.Stderr = log, log
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", d.server.name(), err)
	}
	d.cmd, d.exited = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(d.exited)
	deadline := time.Now().Add(30 * time.Second)
	for {
		text, _ := os.ReadFile(d.logPath)
		if d.server.ready(d, text) {
			return
		}
		select {
		case <-d.exited:
			d.cmd = nil
			t.Fatalf("%s exited during startup: %s\n%s", d.server.name(), cmd.ProcessState, tail(text))
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.Stop()
			t.Fatalf("%s not ready after 30s:\n%s", d.server.name(), tail(text))
		}
	}
}

// Stop stops the server with SIGTERM and waits for it to exit (SIGKILL
// after 10 s). It does nothing when the server is not running.
func (d *DNS) Stop() {
	if d.cmd == nil {
		return
	}
	Terminate(d.cmd.Process, d.exited, 10*time.Second)
	d.cmd = nil
}

// PID is the server's process id (0 when it is not running).
func (d *DNS) PID() int {
	if d.cmd == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// Log returns what the server logged since its last start.
func (d *DNS) Log() string {
	text, _ := os.ReadFile(d.logPath)
	return string(text)
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// soaReady reports whether every zone answers its SOA authoritatively: the
// readiness of the servers that log no line of their own for it.
func (d *DNS) soaReady() bool {
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	for _, z := range d.Zones {
		m := new(dns.Msg)
		m.SetQuestion(z, dns.TypeSOA)
		m.RecursionDesired = false
		r, _, err := c.Exchange(m, d.Addr)
		if err != nil || r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) == 0 {
			return false
		}
	}
	return true
}
