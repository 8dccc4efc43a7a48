package testenv

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// IcingaPermissions are the permissions of the least-privilege API user the
// monitor worker needs (its README lists the same), given to Icinga.User.
var IcingaPermissions = []string{
	"objects/query/Host", "objects/create/Host", "objects/modify/Host", "objects/delete/Host",
	"objects/query/Downtime", "actions/schedule-downtime", "actions/remove-downtime",
}

// Icinga is a real Icinga2 daemon run as a child of the test process with
// every path in a temporary directory (no /etc), its API on a loopback port,
// and no CheckerComponent or NotificationComponent: it never runs a check,
// so the addresses of test hosts are never contacted.
type Icinga struct {
	t   testing.TB
	dir string
	// URL is the API's base URL, "https://127.0.0.1:<port>".
	URL string
	// CAFile is the CA that signed the API's certificate.
	CAFile string
	// User and PasswordFile are the least-privilege user (IcingaPermissions).
	User, PasswordFile string
	// Admin and AdminPassword are an all-permission user, for tests only.
	Admin, AdminPassword string

	client *http.Client
	defs   []string
	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
}

// StartIcinga writes a configuration, certificates (EC P-256, fast) and
// starts icinga2; it is stopped by PID in t.Cleanup.
func StartIcinga(t testing.TB) *Icinga {
	t.Helper()
	Need(t, "icinga2", "openssl")
	dir := t.TempDir()
	for _, d := range []string{"etc", "data/certs", "log", "cache", "spool", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	const cn = "icinga-test"
	certs := filepath.Join(dir, "data/certs")
	ssl := func(args ...string) {
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", certs+"/ca.key",
		"-out", certs+"/ca.crt", "-subj", "/CN=Icinga CA", "-days", "30")
	ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", certs+"/"+cn+".key",
		"-out", certs+"/"+cn+".csr", "-subj", "/CN="+cn, "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")
	ssl("x509", "-req", "-in", certs+"/"+cn+".csr", "-CA", certs+"/ca.crt", "-CAkey", certs+"/ca.key",
		"-CAcreateserial", "-out", certs+"/"+cn+".crt", "-days", "30", "-copy_extensions", "copy")
	port := FreePort(t)
	ic := &Icinga{t: t, dir: dir, URL: fmt.Sprintf("https://127.0.0.1:%d", port), CAFile: certs + "/ca.crt",
		User: "vmglue", PasswordFile: filepath.Join(dir, "vmglue.pass"), Admin: "root", AdminPassword: "rootpass-test"}
	if err := os.WriteFile(ic.PasswordFile, []byte("vmglue-pass-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	perms, _ := json.Marshal(IcingaPermissions)
	conf := fmt.Sprintf(`// No CheckerComponent / NotificationComponent: Icinga never executes a check.
const NodeName = %q
const ZoneName = NodeName
const TicketSalt = ""
const PluginDir = "/usr/lib/nagios/plugins"
const PluginContribDir = "/usr/lib/nagios/plugins"
const ManubulonPluginDir = "/usr/lib/nagios/plugins"
object Endpoint NodeName { }
object Zone ZoneName { endpoints = [ NodeName ] }
include <itl>
include <plugins>
object FileLogger "main-log" { severity = "warning"; path = LogDir + "/icinga2.log" }
object ApiListener "api" {
  bind_host = "127.0.0.1"
  bind_port = %d
  ticket_salt = TicketSalt
  accept_config = false
  accept_commands = false
}
object ApiUser "vmglue" { password = "vmglue-pass-test"; permissions = %s }
object ApiUser "root" { password = %q; permissions = [ "*" ] }
template Host "generic-host" { check_command = "hostalive"; vars.tier = "generic" }
template Host "web-server" { vars.role = "web" }
template Host "db-server" { vars.role = "db" }
// Every web host gets a service, so that downtimes and deletes cover services too.
apply Service "http" { check_command = "http"; assign where host.vars.role == "web" }
`, cn, port, perms, ic.AdminPassword)
	if err := os.WriteFile(filepath.Join(dir, "etc/icinga2.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ic.defs = []string{"-DConfigDir=" + dir + "/etc", "-DDataDir=" + dir + "/data", "-DLogDir=" + dir + "/log",
		"-DCacheDir=" + dir + "/cache", "-DSpoolDir=" + dir + "/spool", "-DInitRunDir=" + dir + "/run",
		"-DRunAsUser=root", "-DRunAsGroup=root"}
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(ic.CAFile)
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("icinga ca: %v", err)
	}
	ic.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ic.Start()
	t.Cleanup(ic.Stop)
	return ic
}

// Start runs the daemon (again, after Stop: API objects persist in the data
// directory) and waits until /v1/status answers 200.
func (ic *Icinga) Start() {
	ic.t.Helper()
	ic.mu.Lock()
	defer ic.mu.Unlock()
	args := append([]string{"daemon", "-c", filepath.Join(ic.dir, "etc/icinga2.conf")}, ic.defs...)
	cmd := exec.Command("icinga2", args...)
	out := &LogBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		ic.t.Fatalf("start icinga2: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	ic.cmd, ic.done = cmd, done
	WaitFor(ic.t, 60*time.Second, "icinga2 api", func() bool {
		select {
		case <-done:
			ic.t.Fatalf("icinga2 exited:\n%s", out.String())
		default:
		}
		code, _ := ic.Do("GET", "/v1/status", nil)
		return code == 200
	})
}

// Stop sends SIGTERM to the daemon this test started and waits for it.
func (ic *Icinga) Stop() {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if ic.cmd == nil {
		return
	}
	stopChild(ic.cmd, ic.done)
	ic.cmd = nil
}

// Do sends an API request as the all-permission user and returns the status
// and the body (code 0 when Icinga cannot be reached). Method "QUERY" is a
// POST with X-HTTP-Method-Override: GET (a query with a body).
func (ic *Icinga) Do(method, path string, body any) (int, []byte) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			ic.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	override := method == "QUERY"
	if override {
		method = "POST"
	}
	req, err := http.NewRequest(method, ic.URL+path, r)
	if err != nil {
		ic.t.Fatal(err)
	}
	if override {
		req.Header.Set("X-HTTP-Method-Override", "GET")
	}
	req.SetBasicAuth(ic.Admin, ic.AdminPassword)
	req.Header.Set("Accept", "application/json")
	resp, err := ic.client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// IcingaHost is what Host reads back of a host object.
type IcingaHost struct {
	Templates   []string       `json:"templates"`
	Address     string         `json:"address"`
	Address6    string         `json:"address6"`
	DisplayName string         `json:"display_name"`
	Vars        map[string]any `json:"vars"`
	LastCheck   float64        `json:"last_check"`
}

// Host returns the host object called name, or nil if there is none.
func (ic *Icinga) Host(name string) *IcingaHost {
	ic.t.Helper()
	code, b := ic.Do("GET", "/v1/objects/hosts/"+pathEscape(name), nil)
	if code == 404 {
		return nil
	}
	var r struct {
		Results []struct {
			Attrs IcingaHost `json:"attrs"`
		} `json:"results"`
	}
	if code != 200 || json.Unmarshal(b, &r) != nil || len(r.Results) != 1 {
		ic.t.Fatalf("get host %s: %d %s", name, code, b)
	}
	return &r.Results[0].Attrs
}

// IcingaDowntime is one downtime as Downtimes returns it.
type IcingaDowntime struct {
	Name        string `json:"name"`
	HostName    string `json:"host_name"`
	ServiceName string `json:"service_name"`
	Author      string `json:"author"`
	Comment     string `json:"comment"`
}

// Downtimes returns the downtimes of a host (its services' too).
func (ic *Icinga) Downtimes(host string) []IcingaDowntime {
	ic.t.Helper()
	code, b := ic.Do("QUERY", "/v1/objects/downtimes", map[string]any{
		"filter": "downtime.host_name==h", "filter_vars": map[string]string{"h": host}})
	code, b = ic.checkQuery(code, b)
	var r struct {
		Results []struct {
			Attrs IcingaDowntime `json:"attrs"`
		} `json:"results"`
	}
	if code == 404 {
		return nil
	}
	if err := json.Unmarshal(b, &r); err != nil {
		ic.t.Fatalf("downtimes of %s: %v %s", host, err, b)
	}
	var out []IcingaDowntime
	for _, x := range r.Results {
		out = append(out, x.Attrs)
	}
	return out
}

func (ic *Icinga) checkQuery(code int, b []byte) (int, []byte) {
	ic.t.Helper()
	if code != 200 && code != 404 {
		ic.t.Fatalf("icinga query: %d %s", code, b)
	}
	return code, b
}

// pathEscape escapes an object name for a URL path.
func pathEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "%", "%25"), "/", "%2F")
}
