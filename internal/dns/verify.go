package dns

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	mdns "github.com/miekg/dns"

	"github.com/vmglue/vmglue/internal/worker"
)

var _ worker.Verifier = (*Target)(nil)

// Verify asks the authoritative server of each name of req.Have and
// req.Want what it holds, with signed queries, and changes nothing. A
// forward name is vmglue's when its TXT marker is the one recorded or
// wanted; then each managed RRset (A, AAAA) of the request is read back. A
// reverse name is vmglue's when its PTR points where it was recorded or is
// wanted. A wanted name that holds records without the marker, or another
// marker or PTR, is reported foreign; a name that does not exist holds
// nothing. Per forward name it sends one query for the marker and one per
// address type; per reverse name one.
func (t *Target) Verify(ctx context.Context, req worker.Request) (worker.Readback, error) {
	rb := worker.Readback{Present: worker.Objects{}, Foreign: worker.Objects{}}
	names := map[string]map[string]bool{} // name → record types asked for
	for _, objs := range []worker.Objects{req.Have, req.Want} {
		for k := range objs {
			typ, name, ok := strings.Cut(k, " ")
			if !ok {
				return rb, worker.Permanent(fmt.Errorf("object key %q is not \"TYPE name\"", k))
			}
			if names[name] == nil {
				names[name] = map[string]bool{}
			}
			names[name][typ] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, name := range sorted {
		if err := t.verifyName(ctx, name, names[name], req, rb); err != nil {
			return rb, fmt.Errorf("verify dns for vm %s: %w", req.VM.Key(), err)
		}
	}
	return rb, nil
}

// verifyName reads one owner name back into rb.
func (t *Target) verifyName(ctx context.Context, name string, types map[string]bool, req worker.Request, rb worker.Readback) error {
	reverse := types[typePTR]
	zone := zoneOf(name, t.forward)
	proof := typeTXT
	if reverse {
		zone, proof = zoneOf(name, t.reverse), typePTR
	}
	if zone == "" {
		return nil // in no configured zone any more: not vmglue's to look at
	}
	key := proof + " " + name
	rcode, vals, err := t.lookup(ctx, zone, name, mdns.StringToType[proof])
	if err != nil {
		return err
	}
	if rcode == mdns.RcodeNameError {
		return nil // nothing there
	}
	if len(vals) != 1 || vals[0] == "" || (vals[0] != req.Have[key] && vals[0] != req.Want[key]) {
		found := "records without a vmglue owner marker"
		if len(vals) > 0 {
			found = fmt.Sprintf("%s %q", proof, strings.Join(vals, " "))
		}
		for typ := range types {
			if _, wanted := req.Want[typ+" "+name]; wanted {
				rb.Foreign[typ+" "+name] = found
			}
		}
		return nil
	}
	rb.Present[key] = vals[0]
	if reverse {
		return nil
	}
	for _, typ := range []string{typeA, typeAAAA} {
		if !types[typ] {
			continue
		}
		_, addrs, err := t.lookup(ctx, zone, name, mdns.StringToType[typ])
		if err != nil {
			return err
		}
		if v := addressList(addrs); v != "" {
			rb.Present[typ+" "+name] = v
		}
	}
	return nil
}

// addressList is the object value of an address RRset: the addresses
// sorted, joined by commas, as Desired writes them.
func addressList(vals []string) string {
	addrs := make([]netip.Addr, 0, len(vals))
	for _, v := range vals {
		if a, err := netip.ParseAddr(v); err == nil {
			addrs = append(addrs, a.Unmap())
		}
	}
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}
