package dns

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	mdns "github.com/miekg/dns"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// Record types in object keys: "A web1.cloud.test.", "PTR 42.0.0.10.in-addr.arpa.".
const (
	typeA    = "A"
	typeAAAA = "AAAA"
	typeTXT  = "TXT"
	typePTR  = "PTR"
)

// forwardTypes are the RRsets vmglue manages at a forward name; the TXT
// record is the ownership marker.
var forwardTypes = []string{typeA, typeAAAA, typeTXT}

// Desired returns the records the VM should have: A and AAAA (values:
// sorted, comma-joined addresses) and the ownership TXT at its name in a
// forward zone, and one PTR per address that falls in a reverse zone. A VM
// that is deleted, in a kind outside present_kinds, or without any selected
// address wants nothing. A name that cannot be made valid, or that lands
// outside every forward zone, is a permanent error.
func (t *Target) Desired(vm *eventbus.VM) (worker.Objects, error) {
	want := worker.Objects{}
	if vm.Deleted() || !t.present[vm.Kind] {
		return want, nil
	}
	var v4, v6 []netip.Addr
	for i, nic := range vm.NICs {
		if !t.selected(nic) {
			continue
		}
		for _, f := range t.cfg.Addresses {
			s := addressField(nic, f)
			if s == "" {
				continue
			}
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				return nil, worker.Permanent(fmt.Errorf("nic %d (%s): %s %q is not an ip address", i, nic.ID, f, s))
			}
			a = a.Unmap()
			if a.Is4() && !slices.Contains(v4, a) {
				v4 = append(v4, a)
			} else if a.Is6() && !slices.Contains(v6, a) {
				v6 = append(v6, a)
			}
		}
	}
	if len(v4)+len(v6) == 0 {
		return want, nil
	}
	name, err := t.hostName(vm)
	if err != nil {
		return nil, worker.Permanent(err)
	}
	for _, set := range []struct {
		typ   string
		addrs []netip.Addr
	}{{typeA, v4}, {typeAAAA, v6}} {
		if len(set.addrs) == 0 {
			continue
		}
		slices.SortFunc(set.addrs, func(a, b netip.Addr) int { return a.Compare(b) })
		s := make([]string, len(set.addrs))
		for i, a := range set.addrs {
			s[i] = a.String()
			rev, _ := mdns.ReverseAddr(s[i])
			if zoneOf(rev, t.reverse) != "" {
				want[typePTR+" "+rev] = name
			}
		}
		want[set.typ+" "+name] = strings.Join(s, ",")
	}
	want[typeTXT+" "+name] = t.marker(vm)
	return want, nil
}

// selected reports whether a NIC's addresses are published.
func (t *Target) selected(nic eventbus.NIC) bool {
	if nic.Alias && !*t.cfg.Aliases {
		return false
	}
	if len(t.cfg.Networks) == 0 {
		return true
	}
	return slices.Contains(t.cfg.Networks, nic.Network) ||
		(nic.NetworkID != "" && slices.Contains(t.cfg.Networks, nic.NetworkID))
}

func addressField(nic eventbus.NIC, field string) string {
	switch field {
	case "ip":
		return nic.IP
	case "ip6":
		return nic.IP6
	case "ip6_global":
		return nic.IP6Global
	case "ip6_ula":
		return nic.IP6ULA
	}
	return ""
}

// marker is the ownership TXT value of a VM, in the style of external-dns:
// "heritage=vmglue,vmglue/owner=<owner_id>,vmglue/installation=<id>,vmglue/vm=<key>".
// Without an installation identity (unit tests) it has the previous
// version's form, without vmglue/installation. A marker of the previous
// version that the registry records is ours: the next Apply of the VM
// finds it (the prerequisite is the recorded value) and rewrites it.
func (t *Target) marker(vm *eventbus.VM) string {
	inst := ""
	if t.installation != "" {
		inst = ",vmglue/installation=" + t.installation
	}
	return "heritage=vmglue,vmglue/owner=" + t.cfg.OwnerID + inst + ",vmglue/vm=" + vm.Key()
}
