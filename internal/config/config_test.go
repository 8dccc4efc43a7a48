package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/lb"
	"github.com/vmglue/vmglue/internal/worker"
)

// The shipped example must stay loadable (secret files are only read when
// the workers start, so their absence is fine here).
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := config.Load("../../deploy/vmglue.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Workers.Names(), ","); got != "dns,lb,puppet,monitor" {
		t.Fatalf("workers %q", got)
	}
	if cfg.Sweep == nil || strings.Join(cfg.Sweep.Clouds(), ",") != "one" || cfg.Sweep.MissingSweeps != 2 || cfg.Sweep.MaxDeleteShare != 0.25 {
		t.Fatalf("sweep %+v", cfg.Sweep)
	}
	if cfg.Runtime.CompactAfter != config.DefaultCompactAfter || cfg.Runtime.CompactInterval != config.DefaultCompactInterval {
		t.Fatalf("compaction %s every %s", cfg.Runtime.CompactAfter, cfg.Runtime.CompactInterval)
	}
}

func TestLoadErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "nats:\n  urll: x\n", "urll"},
		{"bad level", "log:\n  level: loud\n", "log.level"},
		{"bad replicas", "nats:\n  stream:\n    replicas: 9\n", "nats.stream.replicas"},
		{"password without user", "nats:\n  url: nats://127.0.0.1:4222\n  password_file: /x\n", "nats.password_file"},
		{"ops password without user", "nats:\n  url: nats://127.0.0.1:4222\n  ops: {password_file: /x}\n", "nats.ops.password_file"},
		{"a shared user beside the embedded roles", "nats:\n  user: vmglue\n  password_file: /x\n", "nats.embedded.auth: open"},
		{"bad embedded auth", "nats:\n  embedded: {auth: none}\n", "nats.embedded.auth"},
		{"dns without servers", "workers:\n  dns:\n    forward_zones: [a.test.]\n", "workers.dns.servers: "},
		{"lb without instances", "workers:\n  lb: {}\n", "workers.lb.instances: "},
		{"bad installation", "installation: Site A\n", "installation: "},
		{"unknown worker", "workers:\n  monitr: {}\n", "workers.monitr: unknown worker"},
		{"unknown key in a worker", "log:\n  level: info\nworkers:\n  lb:\n    drain_timout: 1m\n", "line 5: field drain_timout not found"},
		{"negative concurrency", "runtime:\n  concurrency: -1\n", "runtime.concurrency"},
		{"negative compact_after", "runtime:\n  compact_after: -1h\n", "runtime.compact_after"},
		{"negative teardown_wait", "runtime:\n  teardown_wait: -1m\n", "runtime.teardown_wait"},
		{"teardown order of an unknown worker", "runtime:\n  teardown_order: {dsn: {deleted: [lb]}}\n", "runtime.teardown_order.dsn: unknown worker"},
		{"teardown order of an unknown kind", "runtime:\n  teardown_order: {dns: {gone: [lb]}}\n", "runtime.teardown_order.dns.gone: unknown kind"},
		{"teardown order after an unknown worker", "runtime:\n  teardown_order: {dns: {deleted: [lb, icinga]}}\n", "runtime.teardown_order.dns.deleted[1]: unknown worker \"icinga\""},
		{"teardown order after itself", "runtime:\n  teardown_order: {lb: {deleted: [lb]}}\n", "runtime.teardown_order.lb.deleted[0]: a worker cannot wait for itself"},
		{"teardown order cycle", "runtime:\n  teardown_order: {lb: {deleted: [puppet]}, puppet: {deleted: [dns]}}\n", "runtime.teardown_order.dns.deleted: cycle dns → lb → puppet → dns"},
		{"malformed secret attribute pattern", "secret_attributes: [\"[A-\"]\n", "secret_attributes"},
		{"sweep without a cloud", "sweep:\n  interval: 5m\n", "sweep: no cloud"},
		{"sweep share above 1", "sweep:\n  max_delete_share: 2\n  opennebula: [{cloud: one}]\n", "sweep.max_delete_share"},
		{"sweep bad cloud name", "sweep:\n  opennebula: [{cloud: one.x}]\n", "sweep.opennebula[0].cloud"},
		{"web actions without operators", "web:\n  actions: true\n", "web.actions"},
		{"web operator without token file", "web:\n  operators: [{name: alice}]\n", "web.operators[0]"},
		{"sweep cloud twice", "sweep:\n  opennebula: [{cloud: one}]\n  openstack: [{cloud: one}]\n", "sweep.openstack[0].cloud: one is swept twice"},
		{"sweep bad name", "sweep:\n  openstack: [{cloud: os, name: fqdn}]\n", "sweep.openstack[0].name: \"fqdn\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(writeConfig(t, tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line naming %q", err, tt.want)
			}
		})
	}
}

// The ops commands and autosign: their own credentials when set, else the
// role's password file in the data directory (embedded roles), else
// serve's (an external NATS with one user, as before roles).
func TestRoleConnOptions(t *testing.T) {
	data := t.TempDir()
	if err := os.MkdirAll(filepath.Join(data, eventbus.CredentialsDir), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{eventbus.RoleOps, eventbus.RoleHook} {
		if err := os.WriteFile(eventbus.CredentialPath(data, role), []byte(role+"-password-0123456789\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("VMGLUE_TEST_AUTOSIGN_PW", "autosign-pw")
	t.Setenv("VMGLUE_TEST_SERVE_PW", "serve-pw")
	tests := []struct {
		name, yaml, role, user, password, inbox string
		found                                   bool
	}{
		{"embedded: the data directory's", "nats:\n  embedded: {data_dir: " + data + "}\n", eventbus.RoleOps, "ops", "ops-password-0123456789", "_INBOX_ops", true},
		{"a source (the bridge): the hook's", "nats:\n  embedded: {data_dir: " + data + "}\n", eventbus.RoleHook, "hook", "hook-password-0123456789", "_INBOX_hook", true},
		{"a source on an external NATS: serve's", "nats:\n  url: nats://127.0.0.1:1\n  user: serve\n  password_env: VMGLUE_TEST_SERVE_PW\n", eventbus.RoleHook, "serve", "serve-pw", "_INBOX_hook", true},
		{"embedded: none there", "nats:\n  embedded: {data_dir: " + t.TempDir() + "}\n", eventbus.RoleAutosign, "", "", "_INBOX_autosign", false},
		{"its own", "nats:\n  url: nats://127.0.0.1:1\n  autosign: {user: autosign, password_env: VMGLUE_TEST_AUTOSIGN_PW}\n", eventbus.RoleAutosign, "autosign", "autosign-pw", "_INBOX_autosign", true},
		{"serve's on an external NATS", "nats:\n  url: nats://127.0.0.1:1\n  user: serve\n  password_env: VMGLUE_TEST_SERVE_PW\n", eventbus.RoleOps, "serve", "serve-pw", "_INBOX_ops", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(p)
			if err != nil {
				t.Fatal(err)
			}
			o, found, err := cfg.RoleConnOptions(tt.role, "test", "nats://127.0.0.1:1")
			if err != nil || found != tt.found || o.User != tt.user || o.Password != tt.password || o.InboxPrefix != tt.inbox {
				t.Fatalf("user %q password %q inbox %q found %v (%v), want %q %q %q %v", o.User, o.Password, o.InboxPrefix, found, err, tt.user, tt.password, tt.inbox, tt.found)
			}
		})
	}
}

// With no data_dir in the config (the vmglue user's default is under its
// home), the ops commands also look in the packaged serve's data directory.
func TestRoleCredentialInSystemDataDir(t *testing.T) {
	system := t.TempDir()
	defer config.SetDataDirs(t.TempDir(), system)()
	if err := os.MkdirAll(filepath.Join(system, eventbus.CredentialsDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(eventbus.CredentialPath(system, eventbus.RoleOps), []byte("system-ops-password-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	if o, found, err := cfg.RoleConnOptions(eventbus.RoleOps, "test", ""); err != nil || !found || o.Password != "system-ops-password-0123" {
		t.Fatalf("default data dir: found %v password %q (%v), want the packaged one's", found, o.Password, err)
	}
	cfg.NATS.Embedded.DataDir = t.TempDir() // chosen: only there
	if _, found, err := cfg.RoleConnOptions(eventbus.RoleOps, "test", ""); err != nil || found {
		t.Fatalf("chosen data dir: found %v (%v), want none", found, err)
	}
}

// metrics.listen: absent is the default, an explicit "" turns
// metrics off, as deploy/vmglue.example.yaml says; a null is absent.
func TestMetricsListen(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"absent", "log:\n  level: info\n", config.DefaultMetricsListen},
		{"section without listen", "metrics: {}\n", config.DefaultMetricsListen},
		{"explicitly empty", "metrics:\n  listen: \"\"\n", ""},
		{"null is absent", "metrics:\n  listen:\n", config.DefaultMetricsListen},
		{"set", "metrics:\n  listen: 127.0.0.1:9999\n", "127.0.0.1:9999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(writeConfig(t, tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Metrics.Listen != tt.want {
				t.Fatalf("metrics.listen %q, want %q", cfg.Metrics.Listen, tt.want)
			}
		})
	}
}

// Load fills every default of the runtime section: the worker runtime's
// SetDefaults finds nothing left to fill, so what `config check` prints is
// what serve uses.
func TestRuntimeDefaultsAreFilled(t *testing.T) {
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Runtime.Options()
	want := got
	want.SetDefaults()
	if got.Concurrency != want.Concurrency || got.MaxDeliver != want.MaxDeliver || got.Backoff.Base != want.Backoff.Base ||
		got.Backoff.Max != want.Backoff.Max || got.ShutdownTimeout != want.ShutdownTimeout || got.ResyncInterval != want.ResyncInterval {
		t.Fatalf("runtime %+v, the runtime's defaults %+v", got, want)
	}
	if got.Concurrency != worker.DefaultConcurrency || got.ResyncInterval != worker.DefaultResyncInterval {
		t.Fatalf("runtime %+v", got)
	}
}

// A worker section decodes into its package's Config, with its defaults.
func TestWorkerSection(t *testing.T) {
	cfg, err := config.Load(writeConfig(t, "workers:\n  lb:\n    instances: [{name: lb1, address: \"unix:/run/haproxy/admin.sock\"}]\n    drain_timeout: 2m\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := cfg.Workers["lb"].(*lb.Config)
	if !ok || c.DrainTimeout != 2*time.Minute || c.DrainPoll != lb.DefaultDrainPoll || c.ServerName != lb.DefaultServerName ||
		len(c.Instances) != 1 || c.Instances[0].Name != "lb1" {
		t.Fatalf("workers.lb %#v", cfg.Workers["lb"])
	}
	if got := cfg.Workers.Names(); len(got) != 1 || got[0] != "lb" {
		t.Fatalf("workers %v", got)
	}
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWebTokens(t *testing.T) {
	dir := t.TempDir()
	good, short := filepath.Join(dir, "good"), filepath.Join(dir, "short")
	if err := os.WriteFile(good, []byte("0123456789abcdefXYZ\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, file, err string
	}{
		{"token", good, ""},
		{"short token", short, "web.operators[0].token_file: token shorter"},
		{"missing file", filepath.Join(dir, "none"), "web.operators[0].token_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			toks, err := config.Web{Operators: []config.Operator{{Name: "alice", TokenFile: tt.file}}}.Tokens()
			switch {
			case tt.err == "" && (err != nil || toks["0123456789abcdefXYZ"] != "alice"):
				t.Fatalf("tokens %v, %v", toks, err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "abc")):
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
		})
	}
}

// The teardown order: the default (dns after lb and monitor on delete)
// unless the file names the worker; only configured dependencies count.
func TestTeardownOrder(t *testing.T) {
	tests := []struct {
		name, yaml string
		worker     string
		configured []string
		want       map[string][]string
	}{
		{"default", "", "dns", []string{"dns", "lb", "monitor"},
			map[string][]string{eventbus.KindDeleted: {"lb", "monitor"}}},
		{"default, lb not configured", "", "dns", []string{"dns", "monitor"},
			map[string][]string{eventbus.KindDeleted: {"monitor"}}},
		{"default, dns alone", "", "dns", []string{"dns"}, map[string][]string{}},
		{"no default for lb", "", "lb", []string{"dns", "lb"}, map[string][]string{}},
		{"dns turned off", "runtime:\n  teardown_order: {dns: {}}\n", "dns", []string{"dns", "lb"}, map[string][]string{}},
		{"another worker's line keeps dns's default", "runtime:\n  teardown_order: {puppet: {deleted: [monitor]}}\n", "dns", []string{"dns", "lb"},
			map[string][]string{eventbus.KindDeleted: {"lb"}}},
		{"own line", "runtime:\n  teardown_order: {puppet: {deleted: [monitor], stopped: [lb, monitor]}}\n", "puppet", []string{"puppet", "lb", "monitor"},
			map[string][]string{eventbus.KindDeleted: {"monitor"}, eventbus.KindStopped: {"lb", "monitor"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ""
			if tt.yaml != "" {
				p = writeConfig(t, tt.yaml)
			}
			cfg, err := config.Load(p)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Runtime.TeardownWait != worker.DefaultTeardownWait {
				t.Fatalf("teardown_wait %s, want the default %s", cfg.Runtime.TeardownWait, worker.DefaultTeardownWait)
			}
			got := cfg.Runtime.TeardownOrder.For(tt.worker, tt.configured)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("order of %s = %v, want %v", tt.worker, got, tt.want)
			}
		})
	}
}
