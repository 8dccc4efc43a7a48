package dns

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const exampleYAML = `
servers: ["192.0.2.53:53", "192.0.2.54"]
zone_servers:
  10.in-addr.arpa.: ["192.0.2.60"]
tsig:
  name: vmglue
  algorithm: hmac-sha512
  secret_file: /etc/vmglue/tsig.secret
forward_zones: [cloud.example.]
reverse_zones: [10.in-addr.arpa., d.f.ip6.arpa.]
ttl: 300
name_template: "{{.Name}}"
networks: [public]
aliases: false
addresses: [ip, ip6_global]
present_kinds: [created, starting, running, migrating, stopped]
owner_id: site-a
adopt_existing: false
timeout: 3s
batch:
  window: 5ms
  max_records: 200
  max_bytes: 30000
`

func TestConfigExampleDecodes(t *testing.T) {
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(exampleYAML))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("decode: %v", err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if *c.Aliases || c.TTL != 300 || c.Batch.MaxRecords != 200 || c.TSIG.Algorithm != "hmac-sha512" {
		t.Fatalf("decoded %+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		return Config{Servers: []string{"127.0.0.1"}, TSIG: TSIG{Name: "k", SecretEnv: "X"}, ForwardZones: []string{"cloud.test."}}
	}
	for _, tc := range []struct {
		name, key string
		mutate    func(*Config)
	}{
		{name: "no servers", key: "dns.servers", mutate: func(c *Config) { c.Servers = nil }},
		{name: "bad server", key: "dns.servers[0]", mutate: func(c *Config) { c.Servers = []string{"a:b:c"} }},
		{name: "no key", key: "dns.tsig.name", mutate: func(c *Config) { c.TSIG.Name = "" }},
		{name: "algorithm", key: "dns.tsig.algorithm", mutate: func(c *Config) { c.TSIG.Algorithm = "md5" }},
		{name: "two secrets", key: "dns.tsig: set exactly one", mutate: func(c *Config) { c.TSIG.SecretFile = "/x" }},
		{name: "no secret", key: "dns.tsig: set exactly one", mutate: func(c *Config) { c.TSIG.SecretEnv = "" }},
		{name: "no zone", key: "dns.forward_zones", mutate: func(c *Config) { c.ForwardZones = nil }},
		{name: "reverse", key: "dns.reverse_zones[0]", mutate: func(c *Config) { c.ReverseZones = []string{"cloud.test."} }},
		{name: "zone servers", key: "dns.zone_servers", mutate: func(c *Config) { c.ZoneServers = map[string][]string{"x.test.": {"127.0.0.1"}} }},
		{name: "template", key: "dns.name_template", mutate: func(c *Config) { c.NameTemplate = "{{.Name" }},
		{name: "address", key: "dns.addresses[1]", mutate: func(c *Config) { c.Addresses = []string{"ip", "mac"} }},
		{name: "kind", key: "dns.present_kinds[0]", mutate: func(c *Config) { c.PresentKinds = []string{"deleted"} }},
		{name: "owner", key: "dns.owner_id", mutate: func(c *Config) { c.OwnerID = "a,b" }},
		{name: "bytes", key: "dns.batch.max_bytes", mutate: func(c *Config) { c.Batch.MaxBytes = 70000 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			c.SetDefaults()
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, tc.key)
			}
		})
	}
	c := valid()
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
}
