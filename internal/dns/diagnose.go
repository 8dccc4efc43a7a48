package dns

import (
	"context"
	"fmt"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/vmglue/vmglue/internal/worker"
)

// Server software, as told by its version.bind answer.
const (
	serverUnknown = ""
	serverBIND    = "BIND"
	serverKnot    = "Knot"
	serverPDNS    = "PowerDNS"
)

// keyVerdict is what a server's answers say of the TSIG key.
type keyVerdict int

const (
	keyUnknown  keyVerdict = iota // no signed answer either way (an error, an unsigned answer)
	keyAccepted                   // a correctly signed answer
	keyRejected                   // NOTAUTH, a TSIG error, or a signature that fails
)

// refusal turns a NOTAUTH or REFUSED answer r (with err, the exchange's
// TSIG verification error if any) into the error to return, telling a key
// problem from a zone that is frozen or forbidden, the same way on every
// server:
//
//   - BIND and Knot answer an update with a wrong secret or an unknown key
//     NOTAUTH with the TSIG error BADSIG or BADKEY in their TSIG record.
//   - PowerDNS answers it REFUSED without any TSIG record, like a policy
//     refusal; but a signed query, which needs no update permission, is
//     NOTAUTH with that key and correctly signed with a good one.
//   - A frozen zone (BIND rndc freeze, Knot zone-freeze) and a policy
//     refusal under a good key are signed answers.
//
// So an answer that is not signed is followed by a signed SOA query for the
// zone. A rejected key is permanent; a REFUSED under a good (or unproven)
// key stays transient. The hint names what to check on the server that
// answered, by its kind when its version.bind tells it.
func (t *Target) refusal(ctx context.Context, what, zone, server string, r *mdns.Msg, err error) error {
	verdict, tsigErr := answerVerdict(r, err)
	if verdict == keyUnknown {
		verdict, tsigErr = t.probeKey(ctx, zone, server)
	}
	kind := t.serverKind(ctx, server)
	e := &rcodeError{what: what, server: server, rcode: r.Rcode, tsig: tsigErr}
	switch {
	case verdict == keyRejected:
		e.hint = keyHint(kind, t.keyShort(), tsigErr)
		return worker.Permanent(e)
	case r.Rcode == mdns.RcodeRefused:
		e.hint = refusedHint(kind, t.keyShort())
		return e
	default:
		e.hint = notAuthHint(kind, t.keyShort(), verdict)
		return worker.Permanent(e)
	}
}

// answerVerdict reads the TSIG record of an answer.
func answerVerdict(r *mdns.Msg, err error) (keyVerdict, string) {
	ts := r.IsTsig()
	switch {
	case ts != nil && ts.Error != mdns.RcodeSuccess:
		return keyRejected, mdns.RcodeToString[int(ts.Error)]
	case ts != nil && isTSIGError(err):
		return keyRejected, ""
	case ts != nil && err == nil:
		return keyAccepted, ""
	}
	return keyUnknown, ""
}

// probeKey sends a signed SOA query for zone to server.
func (t *Target) probeKey(ctx context.Context, zone, server string) (keyVerdict, string) {
	m := new(mdns.Msg)
	m.SetQuestion(zone, mdns.TypeSOA)
	m.RecursionDesired = false
	t.queries.Add(1)
	r, err := t.exchange(ctx, server, m)
	if r == nil {
		return keyUnknown, ""
	}
	v, tsigErr := answerVerdict(r, err)
	if r.Rcode == mdns.RcodeNotAuth {
		v = keyRejected
	}
	return v, tsigErr
}

// versionTimeout bounds the version.bind query: it only words a hint.
const versionTimeout = time.Second

// serverKind asks server for version.bind (CHAOS TXT, unsigned): BIND
// answers its version number, Knot "Knot DNS …", PowerDNS "PowerDNS
// Authoritative Server …". Hidden or unknown: serverUnknown.
func (t *Target) serverKind(ctx context.Context, server string) string {
	m := new(mdns.Msg)
	m.SetQuestion("version.bind.", mdns.TypeTXT)
	m.Question[0].Qclass = mdns.ClassCHAOS
	m.RecursionDesired = false
	timeout := min(t.cfg.Timeout, versionTimeout)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r, _, err := (&mdns.Client{Timeout: timeout}).ExchangeContext(cctx, m, server)
	if err != nil || len(r.Answer) == 0 {
		return serverUnknown
	}
	txt, ok := r.Answer[0].(*mdns.TXT)
	if !ok {
		return serverUnknown
	}
	v := strings.Join(txt.Txt, "")
	switch {
	case strings.HasPrefix(v, "Knot DNS"):
		return serverKnot
	case strings.HasPrefix(v, "PowerDNS"):
		return serverPDNS
	case strings.HasPrefix(v, "9.") && strings.Count(v, ".") >= 2:
		return serverBIND
	}
	return serverUnknown
}

// keyHint says that the key was rejected, why (by TSIG error), and where
// the key is configured on the server.
func keyHint(kind, key, tsigErr string) string {
	why := "wrong secret, key name or algorithm, or clock skew"
	switch tsigErr {
	case "BADKEY":
		why = "it has no key of that name and algorithm"
	case "BADSIG":
		why = "its secret or algorithm for that key differs"
	case "BADTIME":
		why = "the clocks differ by more than 300 s"
	}
	where := map[string]string{
		serverBIND: fmt.Sprintf("key %q in named.conf", key),
		serverKnot: fmt.Sprintf("the key: entry with id: %s in knot.conf", key),
		serverPDNS: fmt.Sprintf("pdnsutil list-tsig-keys on the PowerDNS server (key %s)", key),
	}[kind]
	if where == "" {
		where = fmt.Sprintf("the key on the server (BIND: key %q in named.conf; Knot: key: id %s in knot.conf; PowerDNS: pdnsutil list-tsig-keys)", key, key)
	}
	return fmt.Sprintf("the server rejected tsig key %q (%s): check %s against dns.tsig", key, why, where)
}

// refusedHint is for a REFUSED under a key the server accepted, or whose
// fate could not be told: retried.
func refusedHint(kind, key string) string {
	switch kind {
	case serverBIND:
		return fmt.Sprintf("the zone is frozen (rndc freeze), or key %q may not update it (allow-update / update-policy in named.conf)", key)
	case serverKnot:
		return "the zone's updates are frozen (knotc zone-freeze)"
	case serverPDNS:
		return fmt.Sprintf("PowerDNS refused the update: check dnsupdate=yes, that allow-dnsupdate-from (or the zone's ALLOW-DNSUPDATE-FROM) lets this host in, and that the zone's TSIG-ALLOW-DNSUPDATE names %s", key)
	}
	return fmt.Sprintf("the zone is frozen (BIND: rndc freeze; Knot: knotc zone-freeze), or the server does not let key %q update it (BIND: allow-update / update-policy; PowerDNS: dnsupdate, allow-dnsupdate-from, TSIG-ALLOW-DNSUPDATE)", key)
}

// notAuthHint is for a NOTAUTH under a key the server did not reject.
func notAuthHint(kind, key string, v keyVerdict) string {
	acl := fmt.Sprintf("the zone's acl: needs a rule with key: %s and action: update", key)
	switch {
	case kind == serverKnot && v == keyAccepted:
		return fmt.Sprintf("Knot accepted key %q but does not let it update the zone: %s", key, acl)
	case v == keyAccepted:
		return fmt.Sprintf("the server accepted key %q but is not authoritative for the zone (a secondary?) or does not let the key update it (Knot: %s)", key, acl)
	}
	return fmt.Sprintf("the server rejected tsig key %q (wrong secret, key name or algorithm, or clock skew), or is not authoritative for the zone", key)
}
