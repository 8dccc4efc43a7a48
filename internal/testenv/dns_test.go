package testenv

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Each kind of server starts, takes signed updates, serves them, keeps them
// across a restart and transfers its zones; startup times are logged.
func TestDNSStartUpdateRestart(t *testing.T) {
	for _, kind := range DNSKinds {
		t.Run(kind, func(t *testing.T) {
			t0 := time.Now()
			d := StartDNS(t, kind, DNSOptions{})
			t.Logf("%s ready in %v", kind, time.Since(t0).Round(time.Millisecond))
			if got := d.Lookup(t, "ns1.cloud.test.", dns.TypeA); len(got) != 1 || got[0] != "127.0.0.1" {
				t.Fatalf("ns1 A = %v, want [127.0.0.1]", got)
			}
			if kind == KindBIND {
				if out := d.Rndc(t, "status"); !strings.Contains(out, "server is up and running") {
					t.Fatalf("rndc status: %s", out)
				}
			}

			d.AddForeign(t, "foreign.cloud.test. 60 A 10.9.9.9")
			d.AddForeign(t, "9.9.9.10.in-addr.arpa. 60 PTR foreign.cloud.test.")
			d.AddForeign(t, "foreign.cloud.test. 60 TXT \"hello world\"")
			if got := d.Lookup(t, "foreign.cloud.test.", dns.TypeTXT); len(got) != 1 || got[0] != "hello world" {
				t.Fatalf("TXT = %q", got)
			}

			d.Stop()
			d.Stop() // idempotent
			t0 = time.Now()
			d.Start(t)
			t.Logf("%s restarted in %v", kind, time.Since(t0).Round(time.Millisecond))
			if got := d.Lookup(t, "foreign.cloud.test.", dns.TypeA); len(got) != 1 || got[0] != "10.9.9.9" {
				t.Fatalf("after restart A = %v, want the updated record", got)
			}
			if got := d.Lookup(t, "9.9.9.10.in-addr.arpa.", dns.TypePTR); len(got) != 1 || got[0] != "foreign.cloud.test." {
				t.Fatalf("after restart PTR = %v", got)
			}
			if got := d.Lookup(t, "nothing.cloud.test.", dns.TypeA); got != nil {
				t.Fatalf("nothing A = %v, want nil", got)
			}
			want := []string{"foreign.cloud.test. A 10.9.9.9", "foreign.cloud.test. TXT hello world", "ns1.cloud.test. A 127.0.0.1"}
			if got := d.Zone(t, "cloud.test."); !slices.Equal(got, want) {
				t.Fatalf("zone cloud.test. = %q, want %q", got, want)
			}
		})
	}
}

// The README's promises about PowerDNS: without TSIG-ALLOW-DNSUPDATE it
// takes unsigned updates (the harness sets it on every zone, so it refuses
// them), and its first update moves the SOA serial to a date form, which
// later updates increment.
func TestPowerDNSUpdates(t *testing.T) {
	d := StartDNS(t, KindPowerDNS, DNSOptions{})
	if got := d.serial(t); got != 1 {
		t.Fatalf("serial before any update = %d, want 1", got)
	}
	d.AddForeign(t, "a.cloud.test. 60 A 10.9.9.1")
	first := d.serial(t)
	var days []string // around midnight, the day before or after
	for _, off := range []int{0, -1, 1} {
		days = append(days, time.Now().AddDate(0, 0, off).Format("20060102")+"01")
	}
	if !slices.Contains(days, fmt.Sprint(first)) {
		t.Fatalf("serial after an update = %d, want the date form %s", first, days[0])
	}
	d.AddForeign(t, "b.cloud.test. 60 A 10.9.9.2")
	if got := d.serial(t); got != first+1 {
		t.Fatalf("serial after a second update = %d, want %d", got, first+1)
	}

	unsigned := func() int {
		m := new(dns.Msg)
		m.SetUpdate("cloud.test.")
		rr, _ := dns.NewRR("c.cloud.test. 60 A 10.9.9.3")
		m.Insert([]dns.RR{rr})
		r, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, d.Addr)
		if err != nil {
			t.Fatalf("unsigned update: %v", err)
		}
		return r.Rcode
	}
	if rc := unsigned(); rc != dns.RcodeRefused {
		t.Fatalf("unsigned update with TSIG-ALLOW-DNSUPDATE set: %s, want REFUSED", dns.RcodeToString[rc])
	}
	d.Stop() // PowerDNS caches zone metadata
	d.Pdnsutil(t, "set-meta", "cloud.test.", "TSIG-ALLOW-DNSUPDATE")
	d.Start(t)
	if rc := unsigned(); rc != dns.RcodeSuccess {
		t.Fatalf("unsigned update without TSIG-ALLOW-DNSUPDATE: %s, want NOERROR", dns.RcodeToString[rc])
	}
}

// serial is the SOA serial of cloud.test.
func (d *DNS) serial(t *testing.T) uint32 {
	t.Helper()
	soa := d.Lookup(t, "cloud.test.", dns.TypeSOA)
	var serial uint32
	if len(soa) != 1 {
		t.Fatalf("SOA = %q", soa)
	}
	if _, err := fmt.Sscanf(strings.Fields(soa[0])[2], "%d", &serial); err != nil {
		t.Fatalf("SOA %q: %v", soa[0], err)
	}
	return serial
}
