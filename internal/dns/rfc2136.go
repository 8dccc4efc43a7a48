package dns

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/vmglue/vmglue/internal/worker"
)

// udpMax is the largest UPDATE sent over UDP (before TSIG); larger ones go
// over TCP. It stays under the common 1232-byte safe UDP payload.
const udpMax = 1100

// prereqError is a response with a prerequisite rcode (YXDOMAIN, YXRRSET,
// NXDOMAIN, NXRRSET): the message changed nothing.
type prereqError struct {
	zone  string
	rcode int
}

func (e *prereqError) Error() string {
	return fmt.Sprintf("update zone %s: prerequisite failed: %s", e.zone, mdns.RcodeToString[e.rcode])
}

// failover says whether an UPDATE that failed with err at server goes on
// to the zone's next server (the servers are tried in order): only a
// transient failure does, and it is logged. A failed UPDATE is a
// *prereqError, a worker.Permanent error, or a transient error.
func (t *Target) failover(ctx context.Context, zone, server string, err error) bool {
	var pe *prereqError
	if err == nil || worker.IsPermanent(err) || ctx.Err() != nil || errors.As(err, &pe) {
		return false
	}
	t.log.Debug().Str("zone", zone).Str("server", server).Err(err).Msg("update failed, trying the next server")
	return true
}

func (t *Target) updateAt(ctx context.Context, zone, server string, m *mdns.Msg) error {
	t.messages.Add(1)
	r, err := t.exchange(ctx, server, m)
	if r == nil || (err != nil && r.Rcode == mdns.RcodeSuccess) {
		t.metrics.messages.WithLabelValues(zone, "error").Inc()
		if isTSIGError(err) {
			return worker.Permanent(fmt.Errorf("update zone %s at %s: response failed tsig verification with key %q: %w", zone, server, t.keyShort(), err))
		}
		return fmt.Errorf("update zone %s at %s: %w", zone, server, err)
	}
	rc := mdns.RcodeToString[r.Rcode]
	t.metrics.messages.WithLabelValues(zone, rc).Inc()
	switch r.Rcode {
	case mdns.RcodeSuccess:
		t.records.Add(uint64(len(m.Ns)))
		t.metrics.records.WithLabelValues(zone).Add(float64(len(m.Ns)))
		return nil
	case mdns.RcodeYXDomain, mdns.RcodeYXRrset, mdns.RcodeNXRrset, mdns.RcodeNameError:
		return &prereqError{zone: zone, rcode: r.Rcode}
	case mdns.RcodeServerFailure:
		return &rcodeError{what: "update zone " + zone, server: server, rcode: r.Rcode, hint: "the server failed (zone not loaded?)"}
	case mdns.RcodeNotAuth, mdns.RcodeRefused:
		return t.refusal(ctx, "update zone "+zone, zone, server, r, err)
	case mdns.RcodeNotZone:
		return worker.Permanent(&rcodeError{what: "update zone " + zone, server: server, rcode: r.Rcode, hint: "a record is outside the zone, or the server does not serve the zone"})
	default:
		return worker.Permanent(&rcodeError{what: "update zone " + zone, server: server, rcode: r.Rcode})
	}
}

// rcodeError is a response with a failure rcode other than a failed
// prerequisite.
type rcodeError struct {
	what   string // "update zone cloud.test.", "query web1.cloud.test. A"
	server string
	rcode  int
	tsig   string // the TSIG error (BADSIG, BADKEY, BADTIME) of a NOTAUTH
	hint   string
}

func (e *rcodeError) Error() string {
	s := fmt.Sprintf("%s at %s: %s", e.what, e.server, mdns.RcodeToString[e.rcode])
	if e.tsig != "" {
		s += " (" + e.tsig + ")"
	}
	if e.hint != "" {
		s += ": " + strings.TrimSpace(e.hint)
	}
	return s
}

func (t *Target) keyShort() string { return strings.TrimSuffix(t.keyName, ".") }

func isTSIGError(err error) bool {
	return errors.Is(err, mdns.ErrAuth) || errors.Is(err, mdns.ErrSig) || errors.Is(err, mdns.ErrTime) ||
		errors.Is(err, mdns.ErrSecret) || errors.Is(err, mdns.ErrKeyAlg)
}

// exchange signs a copy of m and sends it with a fresh connection: a
// dns.Conn reused across TSIG messages chains the previous request MAC into
// the next signature (BADSIG). UDP for small messages, TCP for large or
// truncated ones.
func (t *Target) exchange(ctx context.Context, server string, m *mdns.Msg) (*mdns.Msg, error) {
	netw := "udp"
	if m.Len() > udpMax {
		netw = "tcp"
	}
	for {
		mm := m.Copy()
		mm.SetTsig(t.keyName, t.alg, 300, time.Now().Unix())
		c := &mdns.Client{Net: netw, Timeout: t.cfg.Timeout, TsigSecret: map[string]string{t.keyName: t.secret}}
		cctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
		r, _, err := c.ExchangeContext(cctx, mm, server)
		cancel()
		if err == nil && r.Truncated && netw == "udp" {
			netw = "tcp"
			continue
		}
		if err != nil && ctx.Err() != nil {
			return nil, fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return r, err
	}
}

// lookup asks the zone's servers for name/qtype (signed, like updates) and
// returns the rcode and the rdata of the answers (TXT strings joined;
// PTR targets canonical; A and AAAA addresses as text).
func (t *Target) lookup(ctx context.Context, zone, name string, qtype uint16) (int, []string, error) {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	var err error
	for _, s := range t.servers[zone] {
		t.queries.Add(1)
		what := "query " + name + " " + mdns.TypeToString[qtype]
		r, xerr := t.exchange(ctx, s, m)
		if r != nil && (r.Rcode == mdns.RcodeNotAuth || isTSIGError(xerr)) {
			return 0, nil, t.refusal(ctx, what, zone, s, r, xerr)
		}
		if xerr != nil {
			err = fmt.Errorf("%s at %s: %w", what, s, xerr)
			if ctx.Err() != nil {
				return 0, nil, err
			}
			continue
		}
		switch r.Rcode {
		case mdns.RcodeSuccess, mdns.RcodeNameError:
		case mdns.RcodeServerFailure:
			err = fmt.Errorf("%s at %s: SERVFAIL", what, s)
			continue
		default:
			return 0, nil, worker.Permanent(fmt.Errorf("%s at %s: %s", what, s, mdns.RcodeToString[r.Rcode]))
		}
		var out []string
		for _, rr := range r.Answer {
			switch v := rr.(type) {
			case *mdns.TXT:
				out = append(out, strings.Join(v.Txt, ""))
			case *mdns.PTR:
				out = append(out, mdns.CanonicalName(v.Ptr))
			case *mdns.A:
				out = append(out, v.A.String())
			case *mdns.AAAA:
				out = append(out, v.AAAA.String())
			}
		}
		return r.Rcode, out, nil
	}
	return 0, nil, err
}
