package testenv

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Lookup queries the server for name and qtype (dns.TypeA, ...) and returns the
// rdata of each answer ("10.0.0.42", "web1.cloud.test.", TXT strings
// joined), in the order the server returned them; nil for NXDOMAIN or no data.
func (b *DNS) Lookup(t testing.TB, name string, qtype uint16) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = false
	r, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, b.Addr)
	if err != nil {
		t.Fatalf("lookup %s %s: %v", name, dns.TypeToString[qtype], err)
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		t.Fatalf("lookup %s %s: rcode %s", name, dns.TypeToString[qtype], dns.RcodeToString[r.Rcode])
	}
	var out []string
	for _, rr := range r.Answer {
		if rr.Header().Rrtype != qtype {
			continue
		}
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
			continue
		}
		out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
	}
	return out
}

// Zone transfers zone (AXFR, TSIG-signed) and returns its records other
// than SOA and NS as "name TYPE rdata" (no TTL, no class), sorted: the
// whole content, so that a test also sees records it did not expect.
func (b *DNS) Zone(t testing.TB, zone string) []string {
	t.Helper()
	key := dns.Fqdn(b.KeyName)
	m := new(dns.Msg)
	m.SetAxfr(dns.Fqdn(zone))
	m.SetTsig(key, dns.HmacSHA256, 300, time.Now().Unix())
	tr := &dns.Transfer{TsigSecret: map[string]string{key: b.Secret}}
	envs, err := tr.In(m, b.Addr)
	if err != nil {
		t.Fatalf("axfr %s: %v", zone, err)
	}
	var out []string
	for e := range envs {
		if e.Error != nil {
			t.Fatalf("axfr %s: %v", zone, e.Error)
		}
		for _, rr := range e.RR {
			if h := rr.Header(); h.Rrtype == dns.TypeSOA || h.Rrtype == dns.TypeNS {
				continue
			}
			out = append(out, recordText(rr))
		}
	}
	sort.Strings(out)
	return out
}

// recordText is rr as Zone lists it: "name TYPE rdata" (no TTL, no
// class; a TXT's strings joined).
func recordText(rr dns.RR) string {
	h := rr.Header()
	rdata := strings.TrimPrefix(rr.String(), h.String())
	if txt, ok := rr.(*dns.TXT); ok {
		rdata = strings.Join(txt.Txt, "")
	}
	return h.Name + " " + dns.TypeToString[h.Rrtype] + " " + rdata
}

// AddForeign inserts rr (zone file syntax, "web1.cloud.test. 60 A 10.9.9.9")
// with a TSIG-signed update, like an operator running nsupdate: a record
// vmglue does not own.
func (b *DNS) AddForeign(t testing.TB, rr string) {
	t.Helper()
	r, err := dns.NewRR(rr)
	if err != nil || r == nil {
		t.Fatalf("foreign record %q: %v", rr, err)
	}
	b.handUpdate(t, "foreign update "+rr, r.Header().Name, func(m *dns.Msg) { m.Insert([]dns.RR{r}) })
}

// DeleteByHand removes the RRset name/typ ("A", "TXT"; "ANY": every RRset
// at the name) with a TSIG-signed update, like an operator running
// nsupdate's "update delete".
func (b *DNS) DeleteByHand(t testing.TB, name, typ string) {
	t.Helper()
	rr := &dns.ANY{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.StringToType[typ], Class: dns.ClassINET}}
	what := "delete " + name + " " + typ
	if typ == "ANY" {
		b.handUpdate(t, what, rr.Hdr.Name, func(m *dns.Msg) { m.RemoveName([]dns.RR{rr}) })
		return
	}
	b.handUpdate(t, what, rr.Hdr.Name, func(m *dns.Msg) { m.RemoveRRset([]dns.RR{rr}) })
}

// handUpdate sends one signed UPDATE to the zone of name, built by fill.
func (b *DNS) handUpdate(t testing.TB, what, name string, fill func(*dns.Msg)) {
	t.Helper()
	zone := ""
	for _, z := range b.Zones {
		if dns.IsSubDomain(z, name) && len(z) > len(zone) {
			zone = z
		}
	}
	if zone == "" {
		t.Fatalf("%s: in no zone of %v", what, b.Zones)
	}
	m := new(dns.Msg)
	m.SetUpdate(zone)
	fill(m)
	key := dns.Fqdn(b.KeyName)
	m.SetTsig(key, dns.HmacSHA256, 300, time.Now().Unix())
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second, TsigSecret: map[string]string{key: b.Secret}}
	resp, _, err := c.Exchange(m, b.Addr)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if resp.Rcode != dns.RcodeSuccess {
		t.Fatalf("%s: rcode %s", what, dns.RcodeToString[resp.Rcode])
	}
}
