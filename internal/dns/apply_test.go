package dns

import (
	"context"
	"errors"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

const marker42 = "heritage=vmglue,vmglue/owner=vmglue,vmglue/vm=one.42"

func TestCreateApplyAgainDelete(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	tg := newTarget(t, testConfig(b))
	vm := testVM("42", "Web1", "10.0.0.42", "fd00::42")

	have := mustConverge(t, tg, vm, nil)
	expect(t, b, "web1.cloud.test.", mdns.TypeA, "10.0.0.42")
	expect(t, b, "web1.cloud.test.", mdns.TypeAAAA, "fd00::42")
	expect(t, b, "web1.cloud.test.", mdns.TypeTXT, marker42)
	expect(t, b, "42.0.0.10.in-addr.arpa.", mdns.TypePTR, "web1.cloud.test.")
	expect(t, b, "2.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", mdns.TypePTR, "web1.cloud.test.")

	sent := tg.Stats().Messages
	have = mustConverge(t, tg, vm, have)
	if n := tg.Stats().Messages; n != sent {
		t.Fatalf("apply with have == want sent %d messages", n-sent)
	}

	vm.Kind = eventbus.KindStopped // a stopped VM keeps its records
	have = mustConverge(t, tg, vm, have)
	expect(t, b, "web1.cloud.test.", mdns.TypeA, "10.0.0.42")

	vm.Kind = eventbus.KindDeleted
	have = mustConverge(t, tg, vm, have)
	if len(have) != 0 {
		t.Fatalf("after delete have = %v", have)
	}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"web1.cloud.test.", mdns.TypeA}, {"web1.cloud.test.", mdns.TypeTXT}, {"42.0.0.10.in-addr.arpa.", mdns.TypePTR}} {
		expect(t, b, q.name, q.qtype)
	}

	sent = tg.Stats().Messages
	never := testVM("43", "never", "10.0.0.43")
	never.Kind = eventbus.KindDeleted
	mustConverge(t, tg, never, nil)
	if n := tg.Stats().Messages; n != sent {
		t.Fatalf("delete of a never created VM sent %d messages", n-sent)
	}
}

func TestDeleteAlreadyGone(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	tg := newTarget(t, testConfig(b))
	vm := testVM("42", "web1", "10.0.0.42")
	have, _ := tg.Desired(vm) // the registry says applied; DNS holds nothing
	vm.Kind = eventbus.KindDeleted
	got, err := converge(t, context.Background(), tg, vm, have)
	if err != nil || len(got) != 0 {
		t.Fatalf("delete of records already gone = %v, %v; want success", got, err)
	}
}

func TestRenameAndAddressChange(t *testing.T) {
	for _, tc := range []struct {
		name        string
		from, to    *eventbus.VM
		gone        []string // names that must not resolve afterwards (A or PTR)
		wantA       map[string]string
		wantPTR     map[string]string
		maxMessages uint64 // per zone touched
	}{
		{
			name: "rename", from: testVM("42", "web1", "10.0.0.42"), to: testVM("42", "web2", "10.0.0.42"),
			gone:  []string{"web1.cloud.test."},
			wantA: map[string]string{"web2.cloud.test.": "10.0.0.42"}, wantPTR: map[string]string{"42.0.0.10.in-addr.arpa.": "web2.cloud.test."},
			maxMessages: 2,
		},
		{
			name: "ip change", from: testVM("42", "web1", "10.0.0.42"), to: testVM("42", "web1", "10.0.0.43"),
			gone:  []string{"42.0.0.10.in-addr.arpa."},
			wantA: map[string]string{"web1.cloud.test.": "10.0.0.43"}, wantPTR: map[string]string{"43.0.0.10.in-addr.arpa.": "web1.cloud.test."},
			maxMessages: 2,
		},
		{
			name: "rename and second nic", from: testVM("42", "web1", "10.0.0.42"), to: testVM("42", "db1", "10.0.0.42", "10.0.1.42"),
			gone:  []string{"web1.cloud.test."},
			wantA: map[string]string{"db1.cloud.test.": "10.0.0.42 10.0.1.42"}, wantPTR: map[string]string{"42.1.0.10.in-addr.arpa.": "db1.cloud.test."},
			maxMessages: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testenv.StartBIND(t, testenv.BINDOptions{})
			tg := newTarget(t, testConfig(b))
			have := mustConverge(t, tg, tc.from, nil)
			sent := tg.Stats().Messages
			mustConverge(t, tg, tc.to, have)
			if n := tg.Stats().Messages - sent; n > tc.maxMessages {
				t.Errorf("sent %d messages, want at most %d (one per zone)", n, tc.maxMessages)
			}
			for _, g := range tc.gone {
				expect(t, b, g, mdns.TypeA)
				expect(t, b, g, mdns.TypePTR)
			}
			for name, a := range tc.wantA {
				expect(t, b, name, mdns.TypeA, strings.Fields(a)...)
			}
			for name, ptr := range tc.wantPTR {
				expect(t, b, name, mdns.TypePTR, ptr)
			}
		})
	}
}

func TestForeignRecords(t *testing.T) {
	for _, tc := range []struct {
		name, foreign string
		adopt         bool
	}{
		{name: "foreign A", foreign: "web1.cloud.test. 300 A 10.9.9.9"},
		{name: "foreign TXT only", foreign: `web1.cloud.test. 300 TXT "heritage=other"`},
		{name: "foreign PTR", foreign: "42.0.0.10.in-addr.arpa. 300 PTR mail.example.org."},
		// Left by an old nsupdate hook: it names the VM, but vmglue did not
		// write it (the forward name was not ours before).
		{name: "foreign PTR to the VM's name", foreign: "42.0.0.10.in-addr.arpa. 300 PTR web1.cloud.test."},
		{name: "adopt PTR to the VM's name", foreign: "42.0.0.10.in-addr.arpa. 300 PTR web1.cloud.test.", adopt: true},
		{name: "adopt A", foreign: "web1.cloud.test. 300 A 10.9.9.9", adopt: true},
		{name: "adopt PTR", foreign: "42.0.0.10.in-addr.arpa. 300 PTR mail.example.org.", adopt: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testenv.StartBIND(t, testenv.BINDOptions{})
			cfg := testConfig(b)
			cfg.AdoptExisting = tc.adopt
			tg := newTarget(t, cfg)
			b.AddForeign(t, tc.foreign)
			rr, _ := mdns.NewRR(tc.foreign)
			before := b.Lookup(t, rr.Header().Name, rr.Header().Rrtype)

			vm := testVM("42", "web1", "10.0.0.42")
			got, err := converge(t, context.Background(), tg, vm, nil)
			if tc.adopt {
				if err != nil {
					t.Fatalf("adopt: %v", err)
				}
				expect(t, b, "web1.cloud.test.", mdns.TypeA, "10.0.0.42")
				expect(t, b, "web1.cloud.test.", mdns.TypeTXT, marker42)
				expect(t, b, "42.0.0.10.in-addr.arpa.", mdns.TypePTR, "web1.cloud.test.")
				return
			}
			if !worker.IsPermanent(err) || !errors.Is(err, worker.ErrConflict) {
				t.Fatalf("err = %v, want a permanent ErrConflict", err)
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), rr.Header().Name) {
				t.Errorf("error %q does not name %s", err, rr.Header().Name)
			}
			if after := b.Lookup(t, rr.Header().Name, rr.Header().Rrtype); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Fatalf("foreign record changed: %v → %v", before, after)
			}
			if rr.Header().Rrtype == mdns.TypePTR {
				// The forward name converged and is reported as applied.
				if len(got) == 0 {
					t.Fatalf("returned nothing applied; the forward zone succeeded")
				}
			} else {
				// A conflict on the forward name writes no PTR pointing at it.
				if len(got) != 0 {
					t.Fatalf("returned %v applied after a forward conflict", got)
				}
				expect(t, b, "42.0.0.10.in-addr.arpa.", mdns.TypePTR)
			}
			vm.Kind = eventbus.KindDeleted // the partial state cleans up, the foreign record stays
			if _, err := converge(t, context.Background(), tg, vm, got); err != nil {
				t.Fatalf("delete after conflict: %v", err)
			}
			if after := b.Lookup(t, rr.Header().Name, rr.Header().Rrtype); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Fatalf("foreign record changed by delete: %v → %v", before, after)
			}
		})
	}
}

func TestLostRegistryAdoptsOwnMarker(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	tg := newTarget(t, testConfig(b))
	vm := testVM("42", "web1", "10.0.0.42")
	mustConverge(t, tg, vm, nil) // applied, but the registry write was lost
	vm.NICs[0].IP = "10.0.0.44"
	mustConverge(t, tg, vm, nil) // our TXT marker is found: ours, replaced
	expect(t, b, "web1.cloud.test.", mdns.TypeA, "10.0.0.44")
	expect(t, b, "44.0.0.10.in-addr.arpa.", mdns.TypePTR, "web1.cloud.test.")
	// Lost again, same address: the PTR points at a name found ours by its
	// marker, so it is ours too, not a conflict.
	mustConverge(t, tg, vm, nil)
	expect(t, b, "44.0.0.10.in-addr.arpa.", mdns.TypePTR, "web1.cloud.test.")
}
