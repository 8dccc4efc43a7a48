package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// DefaultZones are the zones StartBIND serves when BINDOptions.Zones is empty:
// the forward zone cloud.test., the IPv4 reverse zone of 10.0.0.0/8, and the
// IPv6 reverse zones of the ULA range fd00::/8 and of the documentation prefix
// 2001:db8::/32.
var DefaultZones = []string{
	"cloud.test.",
	"10.in-addr.arpa.",
	"d.f.ip6.arpa.",
	"8.b.d.0.1.0.0.2.ip6.arpa.",
}

// BINDOptions configure StartBIND. The zero value is ready to use.
type BINDOptions struct {
	// Zones are the primary zones, each updatable with the TSIG key. The
	// first one also holds ns1 (127.0.0.1), the NS of every zone.
	// Default: DefaultZones.
	Zones []string
	// KeyName is the TSIG key name. Default "vmglue-test".
	KeyName string
}

// BIND is a named (BIND 9) started by StartBIND: a child of the test process
// listening on 127.0.0.1 (UDP and TCP) with an rndc control channel.
type BIND struct {
	Addr       string   // "127.0.0.1:port" for DNS
	KeyName    string   // TSIG key name (without the final dot)
	Algorithm  string   // "hmac-sha256"
	Secret     string   // base64 TSIG secret
	SecretPath string   // a file holding only Secret (for a secret_file setting)
	Zones      []string // fully qualified zone names
	Dir        string   // working directory: named.conf, zones, journals, named.log

	rndcPort int
	cmd      *exec.Cmd
	exited   chan struct{}
}

// StartBIND writes a fresh configuration with a random TSIG key, starts named
// and waits until it logs "running". t.Cleanup stops it.
func StartBIND(t testing.TB, opts BINDOptions) *BIND {
	t.Helper()
	Need(t, "named")
	zones := opts.Zones
	if len(zones) == 0 {
		zones = DefaultZones
	}
	b := &BIND{
		Addr:      fmt.Sprintf("127.0.0.1:%d", FreeUDPTCPPort(t)),
		KeyName:   strings.TrimSuffix(opts.KeyName, "."),
		Algorithm: "hmac-sha256",
		Secret:    newSecret(t),
		Dir:       t.TempDir(),
		rndcPort:  FreePort(t),
	}
	if b.KeyName == "" {
		b.KeyName = "vmglue-test"
	}
	for _, z := range zones {
		b.Zones = append(b.Zones, dns.CanonicalName(z))
	}
	b.SecretPath = filepath.Join(b.Dir, "tsig.secret")
	b.writeFiles(t)
	t.Cleanup(b.Stop)
	b.Start(t)
	return b
}

func newSecret(t testing.TB) string {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatalf("tsig secret: %v", err)
	}
	return base64.StdEncoding.EncodeToString(k)
}

func (b *BIND) writeFiles(t testing.TB) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(b.Dir, "zones"), 0o755); err != nil {
		t.Fatalf("bind dir: %v", err)
	}
	_, port, _ := strings.Cut(b.Addr, ":")
	ns := "ns1." + b.Zones[0]
	rndcKey := fmt.Sprintf("key \"rndckey\" { algorithm hmac-sha256; secret %q; };\n", newSecret(t))
	in := func(name string) string { return strconv.Quote(filepath.Join(b.Dir, name)) }
	text := fmt.Sprintf("key %q { algorithm hmac-sha256; secret %q; };\n", b.KeyName, b.Secret) + rndcKey
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
};
controls { inet 127.0.0.1 port %d allow { 127.0.0.1; } keys { "rndckey"; }; };
`, strconv.Quote(b.Dir), in("named.pid"), in("session.key"), strconv.Quote(b.Dir),
		in("cache_dump.db"), in("named.stats"), port, b.KeyName, b.rndcPort)
	for i, z := range b.Zones {
		file := "zones/db." + strings.TrimSuffix(z, ".")
		text += fmt.Sprintf("zone %q { type primary; file %q; allow-update { key %q; }; };\n", z, file, b.KeyName)
		zone := fmt.Sprintf("$TTL 60\n@ IN SOA %s hostmaster.%s 1 3600 600 86400 60\n  IN NS %s\n", ns, b.Zones[0], ns)
		if i == 0 {
			zone += "ns1 IN A 127.0.0.1\n"
		}
		b.write(t, file, zone)
	}
	b.write(t, "named.conf", text)
	b.write(t, "rndc.key", rndcKey)
	b.write(t, "tsig.secret", b.Secret+"\n")
}

func (b *BIND) write(t testing.TB, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(b.Dir, name), []byte(text), 0o600); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
}

// Start starts named again after Stop, on the same port with the same zone
// data: the journals are kept, so every update made before survives.
func (b *BIND) Start(t testing.TB) {
	t.Helper()
	if b.cmd != nil {
		t.Fatalf("bind: already running")
	}
	logPath := filepath.Join(b.Dir, "named.log")
	_ = os.Remove(logPath) // a stale "running" line must not count as readiness
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("bind log: %v", err)
	}
	defer log.Close()
	// ulimit -c 0: named can abort during startup and write a large core file.
	cmd := exec.Command("sh", "-c", `ulimit -c 0; exec named -g -c "$0"`, filepath.Join(b.Dir, "named.conf"))
	cmd.Dir = b.Dir
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start named: %v", err)
	}
	b.cmd, b.exited = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(b.exited)
	deadline := time.Now().Add(30 * time.Second)
	for {
		text, _ := os.ReadFile(logPath)
		if bytes.Contains(text, []byte(" running\n")) {
			return
		}
		select {
		case <-b.exited:
			b.cmd = nil
			t.Fatalf("named exited during startup: %s\n%s", cmd.ProcessState, tail(text))
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Stop()
			t.Fatalf("named not running after 30s:\n%s", tail(text))
		}
	}
}

// Stop stops named with SIGTERM and waits for it to exit (SIGKILL after
// 10 s). It does nothing when named is not running.
func (b *BIND) Stop() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
	b.cmd = nil
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Rndc runs rndc against the control channel and returns its output.
func (b *BIND) Rndc(t testing.TB, args ...string) string {
	t.Helper()
	Need(t, "rndc")
	a := append([]string{"-s", "127.0.0.1", "-p", fmt.Sprint(b.rndcPort), "-k", filepath.Join(b.Dir, "rndc.key")}, args...)
	out, err := exec.Command("rndc", a...).CombinedOutput()
	if err != nil {
		t.Fatalf("rndc %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Lookup queries named for name and qtype (dns.TypeA, ...) and returns the
// rdata of each answer ("10.0.0.42", "web1.cloud.test.", TXT strings
// joined), sorted as named returned them; nil for NXDOMAIN or no data.
func (b *BIND) Lookup(t testing.TB, name string, qtype uint16) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = false
	r, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, b.Addr)
	if err != nil {
		t.Fatalf("lookup %s %s: %v", name, dns.TypeToString[qtype], err)
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		t.Fatalf("lookup %s %s: rcode %s", name, dns.TypeToString[qtype], dns.RcodeToString[r.Rcode])
	}
	var out []string
	for _, rr := range r.Answer {
		if rr.Header().Rrtype != qtype {
			continue
		}
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
			continue
		}
		out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
	}
	return out
}

// Zone transfers zone (AXFR, TSIG-signed) and returns its records other
// than SOA and NS as "name TYPE rdata" (no TTL, no class), sorted: the
// whole content, so that a test also sees records it did not expect.
func (b *BIND) Zone(t testing.TB, zone string) []string {
	t.Helper()
	key := dns.Fqdn(b.KeyName)
	m := new(dns.Msg)
	m.SetAxfr(dns.Fqdn(zone))
	m.SetTsig(key, dns.HmacSHA256, 300, time.Now().Unix())
	tr := &dns.Transfer{TsigSecret: map[string]string{key: b.Secret}}
	envs, err := tr.In(m, b.Addr)
	if err != nil {
		t.Fatalf("axfr %s: %v", zone, err)
	}
	var out []string
	for e := range envs {
		if e.Error != nil {
			t.Fatalf("axfr %s: %v", zone, e.Error)
		}
		for _, rr := range e.RR {
			h := rr.Header()
			if h.Rrtype == dns.TypeSOA || h.Rrtype == dns.TypeNS {
				continue
			}
			rdata := strings.TrimPrefix(rr.String(), h.String())
			if txt, ok := rr.(*dns.TXT); ok {
				rdata = strings.Join(txt.Txt, "")
			}
			out = append(out, h.Name+" "+dns.TypeToString[h.Rrtype]+" "+rdata)
		}
	}
	sort.Strings(out)
	return out
}

// AddForeign inserts rr (zone file syntax, "web1.cloud.test. 60 A 10.9.9.9")
// with a TSIG-signed update, like an operator running nsupdate: a record
// vmglue does not own.
func (b *BIND) AddForeign(t testing.TB, rr string) {
	t.Helper()
	r, err := dns.NewRR(rr)
	if err != nil || r == nil {
		t.Fatalf("foreign record %q: %v", rr, err)
	}
	zone := ""
	for _, z := range b.Zones {
		if dns.IsSubDomain(z, r.Header().Name) && len(z) > len(zone) {
			zone = z
		}
	}
	if zone == "" {
		t.Fatalf("foreign record %q: in no zone of %v", rr, b.Zones)
	}
	m := new(dns.Msg)
	m.SetUpdate(zone)
	m.Insert([]dns.RR{r})
	key := dns.Fqdn(b.KeyName)
	m.SetTsig(key, dns.HmacSHA256, 300, time.Now().Unix())
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second, TsigSecret: map[string]string{key: b.Secret}}
	resp, _, err := c.Exchange(m, b.Addr)
	if err != nil {
		t.Fatalf("foreign update %q: %v", rr, err)
	}
	if resp.Rcode != dns.RcodeSuccess {
		t.Fatalf("foreign update %q: rcode %s", rr, dns.RcodeToString[resp.Rcode])
	}
}
