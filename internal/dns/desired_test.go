package dns

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "Web1", want: "web1"},
		{in: "web_server 01", want: "web-server-01"},
		{in: "--a__b--", want: "a-b"},
		{in: "ab--cd", want: "ab--cd"}, // already a valid label: kept
		{in: "xn--bcher-kva", want: "xn--bcher-kva"},
		{in: "Bücher", want: "xn--bcher-kva"},
		{in: "münchen", want: "xn--mnchen-3ya"},
		// Punycode (RFC 3492) of labels with non-ASCII letters.
		{in: "日本語", want: "xn--wgv71a119e"},
		{in: "Ünïcödé-Test", want: "xn--ncd-test-d1a1d7d6c"},
		{in: "a-ü-b", want: "xn--a--b-1ra"},
		{in: "straße", want: "xn--strae-oqa"},
		{in: "ÄÖÜ", want: "xn--4ca0bs"},
		{in: "ελληνικά", want: "xn--hxargifdar"},
		{in: "emoji😀x", want: "emoji-x"},
		{in: "web-ñ1.Cloud", want: "xn--web-1-rta.cloud"},
		{in: "ǅemo", want: "xn--emo-jcb"},
		{in: strings.Repeat("ü", 40) + "abc", want: "xn--abc-goa" + strings.Repeat("a", 39)},
		{in: strings.Repeat("ü", 70) + "abc", want: "abc"}, // too long encoded: non-ASCII dropped
		{in: "web1.Prod.", want: "web1.prod."},
		{in: "web1.prod", want: "web1.prod"},
		{in: strings.Repeat("a", 70), want: strings.Repeat("a", 63)},
		{in: strings.Repeat("a", 62) + "_b", want: strings.Repeat("a", 62)},
		{in: "", err: "empty"},
		{in: "___", err: "no letter or digit"},
		{in: "a..b", err: "label 2"},
		{in: strings.Repeat("abcdefghi.", 26), err: "longer than 253"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Normalize(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, errInvalidName) {
					t.Fatalf("Normalize(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Normalize(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func desiredTarget(t *testing.T, mutate func(*Config)) *Target {
	t.Helper()
	t.Setenv("VMGLUE_TEST_TSIG", "c2VjcmV0")
	cfg := Config{
		Servers:      []string{"127.0.0.1:53"},
		TSIG:         TSIG{Name: "k", SecretEnv: "VMGLUE_TEST_TSIG"},
		ForwardZones: []string{"cloud.test.", "other.test."},
		ReverseZones: []string{"10.in-addr.arpa.", "d.f.ip6.arpa."},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	tg, err := New(cfg, worker.Deps{Log: zerolog.Nop()})
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	t.Cleanup(func() { _ = tg.Close() })
	return tg
}

func TestDesired(t *testing.T) {
	nics := []eventbus.NIC{
		{ID: "0", Network: "public", IP: "10.0.0.42", IP6Global: "2001:db8::42", IP6ULA: "fd00::42"},
		{ID: "1", Network: "backup", NetworkID: "7", IP: "192.168.1.5"},
		{ID: "2", Network: "public", IP: "10.0.0.43", Alias: true, Parent: "0"},
	}
	const mk = "heritage=vmglue,vmglue/owner=vmglue,vmglue/vm=one.42"
	for _, tc := range []struct {
		name    string
		mutate  func(*Config)
		vm      func(*eventbus.VM)
		want    worker.Objects
		wantErr string
	}{
		{name: "defaults", want: worker.Objects{
			"A web1.cloud.test.":          "10.0.0.42,10.0.0.43,192.168.1.5",
			"AAAA web1.cloud.test.":       "2001:db8::42",
			"TXT web1.cloud.test.":        mk,
			"PTR 42.0.0.10.in-addr.arpa.": "web1.cloud.test.",
			"PTR 43.0.0.10.in-addr.arpa.": "web1.cloud.test.",
		}},
		{name: "networks and no aliases, ula, owner id",
			mutate: func(c *Config) {
				c.Networks, c.Aliases, c.Addresses, c.OwnerID = []string{"7", "public"}, new(bool), []string{"ip", "ip6_ula"}, "site-a"
			},
			want: worker.Objects{
				"A web1.cloud.test.":          "10.0.0.42,192.168.1.5",
				"AAAA web1.cloud.test.":       "fd00::42",
				"TXT web1.cloud.test.":        "heritage=vmglue,vmglue/owner=site-a,vmglue/vm=one.42",
				"PTR 42.0.0.10.in-addr.arpa.": "web1.cloud.test.",
				"PTR 2.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.": "web1.cloud.test.",
			}},
		{name: "template absolute in second zone", mutate: func(c *Config) {
			c.NameTemplate, c.Networks = `{{.Hostname}}.other.test.`, []string{"backup"}
		}, vm: func(vm *eventbus.VM) { vm.Hostname = "DB_1" }, want: worker.Objects{
			"A db-1.other.test.":   "192.168.1.5",
			"TXT db-1.other.test.": mk,
		}},
		{name: "deleted", vm: func(vm *eventbus.VM) { vm.Kind = eventbus.KindDeleted }, want: worker.Objects{}},
		{name: "stopped keeps", vm: func(vm *eventbus.VM) { vm.Kind = eventbus.KindStopped }, mutate: func(c *Config) { c.Networks = []string{"backup"} },
			want: worker.Objects{"A web1.cloud.test.": "192.168.1.5", "TXT web1.cloud.test.": mk}},
		{name: "kind not present", mutate: func(c *Config) { c.PresentKinds = []string{"running"} },
			vm: func(vm *eventbus.VM) { vm.Kind = eventbus.KindStopped }, want: worker.Objects{}},
		{name: "no address", vm: func(vm *eventbus.VM) { vm.NICs = nil }, want: worker.Objects{}},
		{name: "invalid name", vm: func(vm *eventbus.VM) { vm.Name = "___" }, wantErr: "no letter or digit"},
		{name: "outside zones", mutate: func(c *Config) { c.NameTemplate = "{{.Name}}.example.org." }, wantErr: "outside every forward zone"},
		{name: "zone apex", mutate: func(c *Config) { c.NameTemplate = "cloud.test." }, wantErr: "zone apex"},
		{name: "template error", mutate: func(c *Config) { c.NameTemplate = "{{.Attributes.missing}}" }, wantErr: "name_template"},
		{name: "bad address", vm: func(vm *eventbus.VM) { vm.NICs[0].IP = "10.0.0.999" }, wantErr: "not an ip address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := desiredTarget(t, tc.mutate)
			vm := &eventbus.VM{Cloud: "one", ID: "42", Name: "Web1", Kind: eventbus.KindRunning,
				NICs: append([]eventbus.NIC(nil), nics...), Attributes: map[string]string{}}
			if tc.vm != nil {
				tc.vm(vm)
			}
			got, err := tg.Desired(vm)
			if tc.wantErr != "" {
				if !worker.IsPermanent(err) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want a permanent error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !maps.Equal(got, tc.want) {
				t.Fatalf("Desired = %v, %v\nwant %v", got, err, tc.want)
			}
		})
	}
}
