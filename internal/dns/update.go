package dns

import (
	"fmt"
	"net"
	"strings"

	mdns "github.com/miekg/dns"

	"github.com/vmglue/vmglue/internal/worker"
)

// buildPart turns a zone's name changes into prerequisites and updates:
//
//   - owned name: prerequisite "our proof RRset exists with our value"
//     (TXT marker, or PTR target), then RemoveRRset + Insert per changed type;
//   - absent name: prerequisite "name not in use", then Insert; nothing
//     when only deletes were asked (already gone);
//   - foreign name: a conflict, unless adopt_existing (then RemoveRRset +
//     Insert without prerequisite); a foreign name we only wanted to delete
//     is left alone.
//
// It returns nil when nothing needs to be sent.
func (t *Target) buildPart(list []*nameChange) (*part, error) {
	p := &part{}
	var conflicts []string
	for _, n := range list {
		switch n.state {
		case stateOwned:
			proof, err := t.rrs(n.proof(), n.name, n.cur, 0)
			if err != nil {
				return nil, err
			}
			p.prereq = append(p.prereq, proof...)
			for _, typ := range n.types() {
				if n.full || n.have[typ] != n.want[typ] {
					if err := t.replace(p, n, typ); err != nil {
						return nil, err
					}
				}
			}
		case stateAbsent:
			if len(n.want) == 0 {
				continue // already gone
			}
			p.prereq = append(p.prereq, &mdns.ANY{Hdr: mdns.RR_Header{Name: n.name, Rrtype: mdns.TypeANY, Class: mdns.ClassNONE}})
			for _, typ := range n.types() {
				if err := t.insert(p, n, typ); err != nil {
					return nil, err
				}
			}
		case stateForeign:
			if len(n.want) == 0 {
				t.log.Warn().Str("name", n.name).Str("found", n.found).Msg("name no longer holds our records: left alone")
				continue
			}
			if !t.cfg.AdoptExisting {
				conflicts = append(conflicts, fmt.Sprintf("%s (holds %s)", n.name, n.found))
				continue
			}
			t.log.Info().Str("name", n.name).Str("found", n.found).Msg("adopting existing records (adopt_existing)")
			for _, typ := range n.types() {
				if err := t.replace(p, n, typ); err != nil {
					return nil, err
				}
			}
		}
		p.names = append(p.names, n.name)
	}
	if len(conflicts) > 0 {
		t.metrics.conflict.Add(float64(len(conflicts)))
		return nil, worker.Permanent(fmt.Errorf("%s: %w (set adopt_existing to take over)", strings.Join(conflicts, ", "), worker.ErrConflict))
	}
	if len(p.update) == 0 {
		return nil, nil
	}
	return p, nil
}

// replace removes the RRset typ at n.name and inserts the wanted one.
func (t *Target) replace(p *part, n *nameChange, typ string) error {
	p.update = append(p.update, &mdns.ANY{Hdr: mdns.RR_Header{Name: n.name, Rrtype: mdns.StringToType[typ], Class: mdns.ClassANY}})
	return t.insert(p, n, typ)
}

func (t *Target) insert(p *part, n *nameChange, typ string) error {
	v, ok := n.want[typ]
	if !ok {
		return nil
	}
	rrs, err := t.rrs(typ, n.name, v, t.cfg.TTL)
	if err != nil {
		return err
	}
	p.update = append(p.update, rrs...)
	return nil
}

// rrs parses an object value into records of class IN.
func (t *Target) rrs(typ, name, value string, ttl uint32) ([]mdns.RR, error) {
	hdr := mdns.RR_Header{Name: name, Rrtype: mdns.StringToType[typ], Class: mdns.ClassINET, Ttl: ttl}
	bad := func() error {
		return worker.Permanent(fmt.Errorf("object %q: value %q is not valid", typ+" "+name, value))
	}
	switch typ {
	case typeA, typeAAAA:
		var out []mdns.RR
		for _, s := range strings.Split(value, ",") {
			ip := net.ParseIP(s)
			switch {
			case ip == nil:
				return nil, bad()
			case typ == typeA && ip.To4() != nil:
				out = append(out, &mdns.A{Hdr: hdr, A: ip.To4()})
			case typ == typeAAAA && ip.To4() == nil:
				out = append(out, &mdns.AAAA{Hdr: hdr, AAAA: ip})
			default:
				return nil, bad()
			}
		}
		return out, nil
	case typeTXT:
		var chunks []string
		for s := value; s != ""; {
			n := min(len(s), 255)
			chunks, s = append(chunks, s[:n]), s[n:]
		}
		return []mdns.RR{&mdns.TXT{Hdr: hdr, Txt: chunks}}, nil
	case typePTR:
		if _, ok := mdns.IsDomainName(value); !ok || !mdns.IsFqdn(value) {
			return nil, bad()
		}
		return []mdns.RR{&mdns.PTR{Hdr: hdr, Ptr: value}}, nil
	}
	return nil, worker.Permanent(fmt.Errorf("object %q: type %s is not managed by the dns worker", typ+" "+name, typ))
}
