package openstack

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/vmglue/vmglue/eventbus"
)

// This file is the one mapping of a server's ports to NICs that the Nova
// bridge (both notification formats, and its lookup in Nova's API) and
// the OpenStack sweep (Nova's API) share, so that one port is one NIC
// with one id whatever saw it.

// NICID is the id of the NIC of a Neutron port: its MAC in lower case,
// the one field of a port that versioned notifications (mac), legacy ones
// (fixed_ips' vif_mac) and Nova's API (OS-EXT-IPS-MAC:mac_addr) all show.
// Without a MAC (legacy notifications of Nova before Liberty have no
// vif_mac) it is "net-" and the network's name: one NIC per network.
// Neutron keeps a MAC unique within a network only: one MAC on two
// networks makes two NICs with one id.
func NICID(network, mac string) string {
	if mac == "" {
		return "net-" + network
	}
	return strings.ToLower(mac)
}

// Address is one fixed address of one of a server's ports.
type Address struct {
	Network string // the network's name (Nova's label)
	MAC     string
	IP      string
	Device  string // the tap device, which only versioned notifications name
}

// APIAddress is one entry of a network's list in a Nova server's
// "addresses" (GET /servers/{id}, microversion 2.3 or later).
type APIAddress struct {
	Addr    string `json:"addr"`
	Version int    `json:"version"`
	Type    string `json:"OS-EXT-IPS:type"` // fixed or floating
	MAC     string `json:"OS-EXT-IPS-MAC:mac_addr"`
}

// APINICs maps a Nova server's "addresses" as NICs maps a notification's:
// its fixed addresses (floating ones are Neutron's, and not in Nova's
// notifications either).
func APINICs(addrs map[string][]APIAddress) []eventbus.NIC {
	var in []Address
	for net, list := range addrs {
		for _, a := range list {
			if a.Type != "floating" {
				in = append(in, Address{Network: net, MAC: a.MAC, IP: a.Addr})
			}
		}
	}
	return NICs(in)
}

// NICs groups the addresses by port (NICID): the first IPv4 and the first
// IPv6 of a port on its NIC, any further one on an alias of it (id
// "<NIC id>-<n>"). The NICs are in network name order, and in the
// sources' order (Nova's network info cache) within a network; an address
// that is not an IP address is left out.
func NICs(addrs []Address) []eventbus.NIC {
	addrs = slices.Clone(addrs)
	slices.SortStableFunc(addrs, func(a, b Address) int { return cmp.Compare(a.Network, b.Network) })
	out := []eventbus.NIC{}
	index := map[string]int{}
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a.IP)
		if err != nil || ip.Zone() != "" {
			continue
		}
		id := NICID(a.Network, a.MAC)
		key := a.Network + "/" + id
		i, ok := index[key]
		if !ok {
			i = len(out)
			index[key] = i
			out = append(out, eventbus.NIC{ID: id, Network: a.Network, MAC: strings.ToLower(a.MAC)})
		}
		nic := &out[i]
		if nic.Name == "" {
			nic.Name = a.Device
		}
		switch {
		case ip.Is4() && nic.IP == "":
			nic.IP = ip.String()
		case ip.Is6() && nic.IP6 == "":
			nic.IP6 = ip.String()
		default:
			alias := eventbus.NIC{ID: id + "-" + strconv.Itoa(len(out)), Network: a.Network, MAC: nic.MAC, Alias: true, Parent: id}
			if ip.Is4() {
				alias.IP = ip.String()
			} else {
				alias.IP6 = ip.String()
			}
			out = append(out, alias)
		}
	}
	return out
}
