package testenv

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestBINDStartUpdateRestart(t *testing.T) {
	b := StartBIND(t, BINDOptions{})
	if got := b.Lookup(t, "ns1.cloud.test.", dns.TypeA); len(got) != 1 || got[0] != "127.0.0.1" {
		t.Fatalf("ns1 A = %v, want [127.0.0.1]", got)
	}
	if out := b.Rndc(t, "status"); !strings.Contains(out, "server is up and running") {
		t.Fatalf("rndc status: %s", out)
	}

	b.AddForeign(t, "foreign.cloud.test. 60 A 10.9.9.9")
	b.AddForeign(t, "9.9.9.10.in-addr.arpa. 60 PTR foreign.cloud.test.")
	b.AddForeign(t, "foreign.cloud.test. 60 TXT \"hello world\"")
	if got := b.Lookup(t, "foreign.cloud.test.", dns.TypeTXT); len(got) != 1 || got[0] != "hello world" {
		t.Fatalf("TXT = %q", got)
	}

	b.Stop()
	b.Stop() // idempotent
	b.Start(t)
	if got := b.Lookup(t, "foreign.cloud.test.", dns.TypeA); len(got) != 1 || got[0] != "10.9.9.9" {
		t.Fatalf("after restart A = %v, want the journaled record", got)
	}
	if got := b.Lookup(t, "9.9.9.10.in-addr.arpa.", dns.TypePTR); len(got) != 1 || got[0] != "foreign.cloud.test." {
		t.Fatalf("after restart PTR = %v", got)
	}
	if got := b.Lookup(t, "nothing.cloud.test.", dns.TypeA); got != nil {
		t.Fatalf("nothing A = %v, want nil", got)
	}
}
