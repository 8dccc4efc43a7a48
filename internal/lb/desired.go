package lb

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// member is one pool a VM belongs to: a backend and the port of the VM's
// service in it.
type member struct {
	Backend string
	Port    uint16
}

// parseMembers parses "web:8080,api:9000" (spaces around items allowed).
func parseMembers(v string) ([]member, error) {
	var out []member
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		be, port, ok := strings.Cut(item, ":")
		if !ok || !nameRE.MatchString(be) {
			return nil, fmt.Errorf("%q: want backend:port, backend of letters, digits, . _ -", item)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil || p == 0 {
			return nil, fmt.Errorf("%q: port must be 1-65535", item)
		}
		out = append(out, member{Backend: be, Port: uint16(p)})
	}
	return out, nil
}

// renderName fills the server name template.
func renderName(tmpl, installation, cloud, vmid, name string) string {
	return strings.NewReplacer("<installation>", installation, "<cloud>", cloud, "<vmid>", vmid, "<name>", name).Replace(tmpl)
}

// members returns the pools of the VM from its attribute and labels, one per
// backend. A backend listed twice with different ports is an error, and so
// is a membership of the attribute that no allow rule grants.
func (t *Target) members(vm *eventbus.VM) ([]member, error) {
	var all []member
	if t.cfg.Attribute != "-" {
		if v, ok := vm.Attributes[t.cfg.Attribute]; ok {
			m, err := parseMembers(v)
			if err == nil {
				err = allowed(t.cfg.Allow, vm, m)
			}
			if err != nil {
				return nil, fmt.Errorf("attribute %s: %w", t.cfg.Attribute, err)
			}
			all = append(all, m...)
		}
	}
	for _, l := range vm.Labels {
		if v, ok := t.cfg.Labels[strings.TrimSpace(l)]; ok {
			m, _ := parseMembers(v) // validated with the config
			all = append(all, m...)
		}
	}
	byBackend := map[string]member{}
	for _, m := range all {
		if o, ok := byBackend[m.Backend]; ok && o.Port != m.Port {
			return nil, fmt.Errorf("backend %s listed with ports %d and %d", m.Backend, o.Port, m.Port)
		}
		byBackend[m.Backend] = m
	}
	out := make([]member, 0, len(byBackend))
	for _, m := range byBackend {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Backend < out[j].Backend })
	return out, nil
}

// address returns the IPv4 address the pools reach the VM on: that of the
// first NIC with one, or of the first NIC on the configured network.
func (t *Target) address(vm *eventbus.VM) (netip.Addr, error) {
	for _, n := range vm.NICs {
		if n.IP == "" || (t.cfg.Network != "" && n.Network != t.cfg.Network) {
			continue
		}
		a, err := netip.ParseAddr(n.IP)
		if err != nil || !a.Is4() {
			return netip.Addr{}, fmt.Errorf("nic %s: invalid IPv4 address %q", n.ID, n.IP)
		}
		if a.IsUnspecified() || a.IsMulticast() {
			return netip.Addr{}, fmt.Errorf("nic %s: address %s cannot be a server", n.ID, a)
		}
		return a, nil
	}
	if t.cfg.Network != "" {
		return netip.Addr{}, fmt.Errorf("no NIC with an IPv4 address on network %q", t.cfg.Network)
	}
	return netip.Addr{}, fmt.Errorf("no NIC with an IPv4 address")
}

func (t *Target) inPool(kind string) bool {
	for _, k := range t.cfg.InPoolKinds {
		if k == kind {
			return true
		}
	}
	return false
}

// Desired returns one object per (instance, backend) the VM is a member of,
// "<instance>/<backend>/<server>" → "<ip>:<port> <options>", or none when
// the VM's kind is not in the pool. A bad membership, address or server
// name is permanent: nothing is sent to HAProxy.
func (t *Target) Desired(vm *eventbus.VM) (worker.Objects, error) {
	want := worker.Objects{}
	if vm.Deleted() || !t.inPool(vm.Kind) {
		return want, nil
	}
	ms, err := t.members(vm)
	if err != nil {
		return nil, worker.Permanent(fmt.Errorf("vm %s: %w", vm.Key(), err))
	}
	if len(ms) == 0 {
		return want, nil
	}
	name := renderName(t.cfg.ServerName, t.installation, vm.Cloud, vm.ID, vm.Name)
	if !validServerName(name) {
		return nil, worker.Permanent(fmt.Errorf("vm %s: server name %q: only letters, digits and . _ : -, at most %d",
			vm.Key(), name, MaxServerName))
	}
	ip, err := t.address(vm)
	if err != nil {
		return nil, worker.Permanent(fmt.Errorf("vm %s: %w", vm.Key(), err))
	}
	opts := t.cfg.Server.options()
	for _, in := range t.cfg.Instances {
		for _, m := range ms {
			s := spec{Addr: netip.AddrPortFrom(ip, m.Port), Options: opts}
			want[objectKey{in.Name, m.Backend, name}.String()] = s.String()
		}
	}
	return want, nil
}
