package nova

import (
	"cmp"
	"slices"
	"strings"

	"github.com/vmglue/vmglue/eventbus"
)

// Comparable is what Nova's API shows of a snapshot of one of its servers,
// so that the sweep compares the Nova bridge's snapshots (from
// notifications) with its own listing by what both can see. Left out:
//
//   - the version and the times but Created: Nova moves a server's
//     updated_at without a notification (on the test OpenStack, 6 s after
//     instance.create.end's updated_at), so a listing newer by updated_at
//     alone says nothing new;
//   - a NIC's id and device name (the id is the MAC everywhere
//     (openstack.NICID) but in a legacy notification without vif_mac; the
//     tap device is only in versioned notifications), the addresses beyond
//     a port's first IPv4 and IPv6 (the aliases), and the NIC order;
//   - flavor, image and tags, which the listing does not map.
func Comparable(vm eventbus.VM) eventbus.VM {
	vm.Version = eventbus.Version{}
	vm.Times = eventbus.Times{Created: vm.Times.Created}
	vm.Flavor, vm.Image, vm.Labels = "", "", nil
	if len(vm.Attributes) == 0 {
		vm.Attributes = nil
	}
	nics := make([]eventbus.NIC, 0, len(vm.NICs))
	for _, n := range vm.NICs {
		if n.Alias {
			continue
		}
		nics = append(nics, eventbus.NIC{Network: n.Network, IP: n.IP, IP6: n.IP6, MAC: strings.ToLower(n.MAC)})
	}
	slices.SortFunc(nics, func(a, b eventbus.NIC) int {
		return cmp.Or(cmp.Compare(a.Network, b.Network), cmp.Compare(a.MAC, b.MAC))
	})
	vm.NICs = nics
	return vm
}
