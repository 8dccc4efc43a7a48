package lb

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// TestServerOptions: the server options in the form HAProxy's "add server"
// takes.
func TestServerOptions(t *testing.T) {
	s := ServerOptions{Weight: 10, MaxConn: 200, Check: true, Inter: 2 * time.Second, Rise: 2, Fall: 3}
	if got := s.options(); got != "weight 10 maxconn 200 check inter 2000ms rise 2 fall 3" {
		t.Fatalf("options %q", got)
	}
}

func TestValidateNamesKey(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		key  string
	}{
		{"no instances", func(c *Config) { c.Instances = nil }, "instances"},
		{"bad instance name", func(c *Config) { c.Instances[0].Name = "lb/1" }, "instances[0].name"},
		{"duplicate instance", func(c *Config) { c.Instances = append(c.Instances, c.Instances[0]) }, "instances[1].name"},
		{"bad address", func(c *Config) { c.Instances[0].Address = "/run/admin.sock" }, "instances[0].address"},
		{"bad label rule", func(c *Config) { c.Labels = map[string]string{"web": "web:0"} }, "labels.web"},
		{"server name chars", func(c *Config) { c.ServerName = "vm/<vmid>" }, "server_name"},
		{"server name without vm", func(c *Config) { c.ServerName = "<cloud>" }, "server_name"},
		{"weight", func(c *Config) { c.Server.Weight = 300 }, "server.weight"},
		{"inter without check", func(c *Config) { c.Server.Inter = time.Second }, "server.check"},
		{"kind", func(c *Config) { c.InPoolKinds = []string{"up"} }, "in_pool_kinds[0]"},
		{"deleted in pool", func(c *Config) { c.InPoolKinds = []string{"deleted"} }, "in_pool_kinds[0]"},
		{"negative drain", func(c *Config) { c.DrainTimeout = -time.Second }, "drain_timeout"},
		{"nothing joins", func(c *Config) { c.Attribute = "-" }, "attribute"},
		{"allow without port", func(c *Config) { c.Allow = []Allow{{Backends: []string{"web"}}} }, "allow[0].ports"},
		{"allow bad range", func(c *Config) { c.Allow[0].Ports = []string{"90-80"} }, "allow[0].ports[0]"},
		{"allow bad backend", func(c *Config) { c.Allow[0].Backends = []string{"web/x"} }, "allow[0].backends[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig("lb1", "unix:/run/haproxy/admin.sock")
			c.SetDefaults()
			if err := c.Validate(); err != nil {
				t.Fatalf("base config: %v", err)
			}
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), "lb."+tc.key+":") {
				t.Fatalf("error %v, want one naming %s", err, tc.key)
			}
		})
	}
}

func TestDesired(t *testing.T) {
	base := func() *eventbus.VM {
		vm := testVM("42", "web:8080")
		vm.NICs = []eventbus.NIC{{ID: "0", Network: "mgmt"}, {ID: "1", Network: "lan", IP: "10.0.0.42"},
			{ID: "2", Network: "public", IP: "192.0.2.42"}}
		return vm
	}
	tests := []struct {
		name   string
		edit   func(vm *eventbus.VM)
		config func(c *Config)
		want   worker.Objects
	}{
		{name: "attribute", want: worker.Objects{"lb1/web/one-42": "10.0.0.42:8080"}},
		{name: "network", config: func(c *Config) { c.Network = "public" },
			want: worker.Objects{"lb1/web/one-42": "192.0.2.42:8080"}},
		{name: "labels and attribute", edit: func(vm *eventbus.VM) { vm.Labels = []string{"api", "other"} },
			config: func(c *Config) { c.Labels = map[string]string{"api": "api:9000,web:8080"} },
			want:   worker.Objects{"lb1/web/one-42": "10.0.0.42:8080", "lb1/api/one-42": "10.0.0.42:9000"}},
		{name: "two instances and options", config: func(c *Config) {
			c.Instances = append(c.Instances, Instance{Name: "lb2", Address: "tcp:127.0.0.1:1"})
			c.Server = ServerOptions{Weight: 5, Check: true}
		}, want: worker.Objects{"lb1/web/one-42": "10.0.0.42:8080 weight 5 check", "lb2/web/one-42": "10.0.0.42:8080 weight 5 check"}},
		{name: "name template", config: func(c *Config) { c.ServerName = "<name>.<cloud>" },
			want: worker.Objects{"lb1/web/vm42.one": "10.0.0.42:8080"}},
		{name: "stopped", edit: func(vm *eventbus.VM) { vm.Kind = eventbus.KindStopped }, want: worker.Objects{}},
		{name: "deleted without ip", edit: func(vm *eventbus.VM) { vm.Kind = eventbus.KindDeleted; vm.NICs = nil },
			want: worker.Objects{}},
		{name: "migrating in pool by config", edit: func(vm *eventbus.VM) { vm.Kind = eventbus.KindMigrating },
			config: func(c *Config) { c.InPoolKinds = []string{"running", "migrating"} },
			want:   worker.Objects{"lb1/web/one-42": "10.0.0.42:8080"}},
		{name: "no membership", edit: func(vm *eventbus.VM) { vm.Attributes = nil }, want: worker.Objects{}},
		{name: "attribute off", edit: func(vm *eventbus.VM) {}, config: func(c *Config) {
			c.Attribute = "-"
			c.Labels = map[string]string{"x": "x:1"}
		}, want: worker.Objects{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig("lb1", "unix:/run/haproxy/admin.sock")
			if tc.config != nil {
				tc.config(&c)
			}
			tgt, _ := newTarget(t, c)
			vm := base()
			if tc.edit != nil {
				tc.edit(vm)
			}
			got, err := tgt.Desired(vm)
			if err != nil || !maps.Equal(got, tc.want) {
				t.Fatalf("desired %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestAllow: a membership the attribute asks for is open only when a rule
// of lb.allow grants its backend, its port and the rule's conditions on
// the VM; labels mapped by the operator need no rule.
func TestAllow(t *testing.T) {
	web := Allow{Backends: []string{"web"}, Ports: []string{"8080", "9000-9009"}}
	tests := []struct {
		name   string
		allow  []Allow
		attr   string
		edit   func(vm *eventbus.VM)
		labels map[string]string
		ok     bool
	}{
		{name: "no rules: nothing open", attr: "web:8080"},
		{name: "backend and port", allow: []Allow{web}, attr: "web:8080", ok: true},
		{name: "port in range", allow: []Allow{web}, attr: "web:9009", ok: true},
		{name: "port outside", allow: []Allow{web}, attr: "web:443"},
		{name: "other backend", allow: []Allow{web}, attr: "prod_payments:443"},
		{name: "one of two refused", allow: []Allow{web}, attr: "web:8080,prod_payments:443"},
		{name: "owner matches", allow: []Allow{{Backends: []string{"web"}, Ports: []string{"8080"}, Owners: []string{"alice"}}},
			attr: "web:8080", edit: func(vm *eventbus.VM) { vm.Owner = "alice" }, ok: true},
		{name: "owner differs", allow: []Allow{{Backends: []string{"web"}, Ports: []string{"8080"}, Owners: []string{"alice"}}},
			attr: "web:8080", edit: func(vm *eventbus.VM) { vm.Owner = "mallory" }},
		{name: "group", allow: []Allow{{Backends: []string{"web"}, Ports: []string{"8080"}, Groups: []string{"web-team"}}},
			attr: "web:8080", edit: func(vm *eventbus.VM) { vm.Group = "web-team" }, ok: true},
		{name: "openstack project as group", allow: []Allow{{Backends: []string{"web"}, Ports: []string{"8080"}, Groups: []string{"p1"}}},
			attr: "web:8080", edit: func(vm *eventbus.VM) { vm.Project = "p1" }, ok: true},
		{name: "owner and group both needed", allow: []Allow{{Backends: []string{"web"}, Ports: []string{"8080"},
			Owners: []string{"alice"}, Groups: []string{"web-team"}}},
			attr: "web:8080", edit: func(vm *eventbus.VM) { vm.Owner = "alice"; vm.Group = "users" }},
		{name: "label", allow: []Allow{{Backends: []string{"web"}, Ports: []string{"8080"}, Labels: []string{"frontend"}}},
			attr: "web:8080", edit: func(vm *eventbus.VM) { vm.Labels = []string{"frontend"} }, ok: true},
		{name: "label missing", allow: []Allow{{Backends: []string{"web"}, Ports: []string{"8080"}, Labels: []string{"frontend"}}},
			attr: "web:8080"},
		{name: "operator's label mapping needs no rule", labels: map[string]string{"api": "api:9000"},
			edit: func(vm *eventbus.VM) { vm.Labels = []string{"api"} }, ok: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig("lb1", "unix:/run/haproxy/admin.sock")
			c.Allow, c.Labels = tc.allow, tc.labels
			tgt, _ := newTarget(t, c)
			vm := testVM("42", tc.attr)
			if tc.edit != nil {
				tc.edit(vm)
			}
			got, err := tgt.Desired(vm)
			if tc.ok && (err != nil || len(got) == 0) {
				t.Fatalf("desired %v, %v; want a membership", got, err)
			}
			if !tc.ok && (!worker.IsPermanent(err) || !errors.Is(err, ErrNotAllowed)) {
				t.Fatalf("desired %v, %v; want a permanent ErrNotAllowed", got, err)
			}
		})
	}
}

// TestServerNameInstallation: <installation> in server_name is the
// installation identity serve gives the worker; without one it is refused.
func TestServerNameInstallation(t *testing.T) {
	c := testConfig("lb1", "unix:/run/haproxy/admin.sock")
	c.ServerName = "<installation>-<cloud>-<vmid>"
	if _, err := New(c, worker.Deps{Log: zerolog.Nop()}); err == nil || !strings.Contains(err.Error(), "lb.server_name") {
		t.Fatalf("without an installation: %v, want an error naming lb.server_name", err)
	}
	tgt, err := New(c, worker.Deps{Log: zerolog.Nop(), Installation: "vg-site-a"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := tgt.Desired(testVM("42", "web:8080"))
	if want := (worker.Objects{"lb1/web/vg-site-a-one-42": "127.0.0.1:8080"}); err != nil || !maps.Equal(got, want) {
		t.Fatalf("desired %v, %v; want %v", got, err, want)
	}
}
