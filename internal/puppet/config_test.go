package puppet

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

func TestValidCertname(t *testing.T) {
	for name, ok := range map[string]bool{
		"web1.cloud.test": true, "a": true, "vm_42-x.cloud.test": true, "puppet": true,
		"": false, ".web1": false, "web1.": false, "-web": false, "Web1.cloud.test": false,
		"a..b": false, "web 1": false, "web1/../x": false, "w\u00e9b": false, strings.Repeat("a", 254): false,
	} {
		if ValidCertname(name) != ok {
			t.Errorf("ValidCertname(%q) = %v", name, !ok)
		}
	}
}

func validConfig() Config {
	c := Config{CAURL: "https://puppet:8140", PuppetDBURL: "https://puppetdb:8081", Domain: "cloud.test",
		TLS: TLSConfig{CAFile: "ca.pem", CertFile: "w.pem", KeyFile: "w.key"}}
	c.SetDefaults()
	return c
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		key    string
	}{
		{"valid", func(*Config) {}, ""},
		{"no ca url", func(c *Config) { c.CAURL = "" }, "puppet.ca_url"},
		{"credentials in url", func(c *Config) { c.PuppetDBURL = "https://u:secret@pdb:8081" }, "puppet.puppetdb_url"},
		{"url with path", func(c *Config) { c.CAURL = "https://puppet:8140/puppet-ca/v1" }, "puppet.ca_url"},
		{"no key file", func(c *Config) { c.TLS.KeyFile = "" }, "puppet.tls.key_file"},
		{"bad domain", func(c *Config) { c.Domain = "Cloud..test" }, "puppet.domain"},
		{"template needs domain", func(c *Config) { c.Domain = "" }, "puppet.domain"},
		{"template without domain", func(c *Config) { c.Domain, c.Certname = "", "{{.ID}}.{{.Cloud}}.vm" }, ""},
		{"bad template", func(c *Config) { c.Certname = "{{.Name" }, "puppet.certname"},
		{"negative skew", func(c *Config) { c.OwnershipSkew = -time.Minute }, "puppet.ownership_skew"},
		{"http ca url", func(c *Config) { c.CAURL = "http://puppet:8140" }, "puppet.ca_url"},
		{"http puppetdb url", func(c *Config) { c.PuppetDBURL = "http://puppetdb:8080" }, "puppet.puppetdb_url"},
		{"challenge attribute not sealed", func(c *Config) { c.Autosign.ChallengeAttribute = "PUPPET_CODE" }, "puppet.autosign.challenge_attribute"},
		{"challenge attribute not sealed, challenge off", func(c *Config) {
			c.Autosign.RequireChallenge, c.Autosign.ChallengeAttribute = false, "ROLE"
		}, "puppet.autosign.challenge_attribute"},
		{"challenge attribute sealed", func(c *Config) {
			c.Autosign.RequireChallenge, c.Autosign.ChallengeAttribute = true, "vm_boot_token"
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.change(&c)
			err := c.Validate()
			if (err == nil) != (tc.key == "") || (err != nil && !strings.HasPrefix(err.Error(), tc.key+":")) {
				t.Fatalf("got %v, want error naming %q", err, tc.key)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	off := false
	tests := []struct {
		name       string
		in         Config
		wantVerify bool
		wantSkew   time.Duration
	}{
		{"unset", Config{}, true, DefaultOwnershipSkew},
		{"disabled", Config{VerifyCertAge: &off}, false, DefaultOwnershipSkew},
		{"skew set", Config{OwnershipSkew: time.Minute}, true, time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.in
			c.SetDefaults()
			if *c.VerifyCertAge != tc.wantVerify || c.OwnershipSkew != tc.wantSkew {
				t.Fatalf("verify_cert_age %v, ownership_skew %s; want %v, %s", *c.VerifyCertAge, c.OwnershipSkew, tc.wantVerify, tc.wantSkew)
			}
		})
	}
}

func TestDesired(t *testing.T) {
	tmpl, _ := parseCertname(DefaultCertname)
	tg := &Target{cfg: validConfig(), certname: tmpl}
	custom, _ := parseCertname(`{{.Cloud}}-{{.ID}}.{{index .Attributes "ZONE"}}.{{.Domain}}`)
	tests := []struct {
		name      string
		tg        *Target
		vm        *eventbus.VM
		want      worker.Objects
		permanent bool
	}{
		{"running", tg, fakeVM("Web1", eventbus.KindRunning, nil),
			worker.Objects{"cert web1.cloud.test": "", "node web1.cloud.test": ""}, false},
		{"stopped keeps ownership", tg, fakeVM("web1", eventbus.KindStopped, nil),
			worker.Objects{"cert web1.cloud.test": "", "node web1.cloud.test": ""}, false},
		{"deleted wants nothing", tg, fakeVM("web1", eventbus.KindDeleted, nil), worker.Objects{}, false},
		{"invalid name", tg, fakeVM("web 1", eventbus.KindRunning, nil), nil, true},
		{"custom template", &Target{cfg: validConfig(), certname: custom},
			fakeVM("x", eventbus.KindRunning, map[string]string{"ZONE": "z1"}),
			worker.Objects{"cert one-id-x.z1.cloud.test": "", "node one-id-x.z1.cloud.test": ""}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.tg.Desired(tc.vm)
			if worker.IsPermanent(err) != tc.permanent || (err != nil && !tc.permanent) {
				t.Fatalf("err %v, permanent want %v", err, tc.permanent)
			}
			if !tc.permanent && !maps.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
