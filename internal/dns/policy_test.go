package dns

import (
	"errors"
	"fmt"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// TestNameSquattingRefused runs tenants' names against a real BIND serving
// two forward zones: a name may not add labels, be absolute, land in the
// other zone or take a denied label. A refused name is a permanent error
// and BIND gets nothing; an allowed one is created.
func TestNameSquattingRefused(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{Zones: []string{"cloud.test.", "corp.example.", "sub.cloud.test.", "10.in-addr.arpa."}})
	tests := []struct {
		name     string
		vmName   string
		template string
		deny     []string
		record   string // the name that must (allowed) or must not (refused) exist
		ok       bool
	}{
		{name: "plain", vmName: "web1", record: "web1.cloud.test.", ok: true},
		{name: "wpad", vmName: "wpad", record: "wpad.cloud.test."},
		{name: "wpad in capitals", vmName: "WPAD", record: "wpad.cloud.test."},
		{name: "isatap", vmName: "isatap", record: "isatap.cloud.test."},
		{name: "localhost", vmName: "localhost", record: "localhost.cloud.test."},
		{name: "underscore", vmName: "_ldap", record: "ldap.cloud.test."},
		{name: "extra label", vmName: "login.sso", record: "login.sso.cloud.test."},
		{name: "into a sub zone", vmName: "www.sub", record: "www.sub.cloud.test."},
		{name: "absolute into another zone", vmName: "www.corp.example.", record: "www.corp.example."},
		{name: "absolute in own zone", vmName: "www.cloud.test.", record: "www.cloud.test."},
		{name: "deny list off", vmName: "wpad", deny: []string{}, record: "wpad.cloud.test.", ok: true},
		{name: "operator's deny pattern", vmName: "mail-1", deny: []string{"mail*"}, record: "mail-1.cloud.test."},
		{name: "template adds a label on purpose", vmName: "db", template: "{{.Name}}.vms", record: "db.vms.cloud.test.", ok: true},
		{name: "template label, tenant adds one", vmName: "a.db", template: "{{.Name}}.vms", record: "a.db.vms.cloud.test."},
		{name: "template into the other zone on purpose", vmName: "db2", template: "{{.Name}}.corp.example.", record: "db2.corp.example.", ok: true},
		{name: "template into a sub zone", vmName: "db3", template: "{{.Name}}.sub", record: "db3.sub.cloud.test."},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(b)
			cfg.ForwardZones = []string{"cloud.test.", "corp.example.", "sub.cloud.test."}
			cfg.ReverseZones = []string{"10.in-addr.arpa."}
			cfg.NameTemplate, cfg.DenyNames = tc.template, tc.deny
			tg := newTarget(t, cfg)
			vm := testVM(fmt.Sprintf("s%d", i), tc.vmName, fmt.Sprintf("10.0.1.%d", i+1))
			want, err := tg.Desired(vm)
			if err == nil {
				_, err = tg.Apply(t.Context(), worker.Request{VM: vm, Want: want})
			}
			switch {
			case tc.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.ok:
				if len(b.Lookup(t, tc.record, mdns.TypeA)) != 1 {
					t.Fatalf("%s has no A record", tc.record)
				}
			case !worker.IsPermanent(err) || !errors.Is(err, errInvalidName):
				t.Fatalf("err %v, want a permanent invalid name", err)
			default:
				t.Logf("refused: %v", err)
				expect(t, b, tc.record, mdns.TypeA)
				expect(t, b, tc.record, mdns.TypeTXT)
			}
		})
	}
}
