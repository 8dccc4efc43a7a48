package dns

import (
	"strings"
	"testing"
)

// Where the server hides its version, the hints name what to check on each
// of the three servers; where it is known, only on that one.
func TestHintsByServerKind(t *testing.T) {
	for _, tc := range []struct {
		name, hint string
		want, not  []string
	}{
		{name: "key, unknown server", hint: keyHint(serverUnknown, "k", "BADSIG"),
			want: []string{`rejected tsig key "k"`, "secret or algorithm", "named.conf", "knot.conf", "pdnsutil list-tsig-keys"}},
		{name: "key, BIND", hint: keyHint(serverBIND, "k", "BADKEY"),
			want: []string{`rejected tsig key "k"`, "no key of that name", `key "k" in named.conf`}, not: []string{"knot", "pdnsutil"}},
		{name: "key, PowerDNS", hint: keyHint(serverPDNS, "k", ""),
			want: []string{`rejected tsig key "k"`, "pdnsutil list-tsig-keys"}, not: []string{"named.conf", "knot.conf"}},
		{name: "refused, unknown server", hint: refusedHint(serverUnknown, "k"),
			want: []string{"rndc freeze", "knotc zone-freeze", "TSIG-ALLOW-DNSUPDATE"}, not: []string{"rejected"}},
		{name: "refused, Knot", hint: refusedHint(serverKnot, "k"),
			want: []string{"knotc zone-freeze"}, not: []string{"rndc", "PowerDNS"}},
		{name: "notauth, Knot, good key", hint: notAuthHint(serverKnot, "k", keyAccepted),
			want: []string{"acl", "action: update"}, not: []string{"rejected"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, w := range tc.want {
				if !strings.Contains(tc.hint, w) {
					t.Errorf("hint %q lacks %q", tc.hint, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(tc.hint, n) {
					t.Errorf("hint %q has %q", tc.hint, n)
				}
			}
		})
	}
}
