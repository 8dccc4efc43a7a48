package testenv

import (
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
