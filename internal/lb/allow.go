package lb

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/vmglue/vmglue/eventbus"
)

// ErrNotAllowed is wrapped by a membership the VM's attribute asks for and
// no allow rule grants (a tenant's LB_BACKENDS naming a backend, a port or
// an owner the operator did not open).
var ErrNotAllowed = errors.New("backend not open to this vm")

// Allow is one rule of lb.allow: the backends VMs may join through the
// attribute, on which ports, and optionally only for some owners, groups
// or labels. A membership is allowed when one rule lists its backend and
// port and every condition the rule sets holds (a list matches when it
// holds the VM's value).
type Allow struct {
	// Backends are the HAProxy backend names this rule opens. Required.
	Backends []string `yaml:"backends"`
	// Ports are the ports allowed, "8080" or a range "9000-9099". Required.
	Ports []string `yaml:"ports"`
	// Owners, when set, are the VM owners (OpenNebula UNAME, the user
	// name the source gives) the rule is for.
	Owners []string `yaml:"owners"`
	// Groups, when set, are the VM groups (OpenNebula GNAME) or OpenStack
	// projects the rule is for.
	Groups []string `yaml:"groups"`
	// Labels, when set: the VM must carry one of them.
	Labels []string `yaml:"labels"`
}

// portRange is an inclusive range of ports.
type portRange struct{ lo, hi uint16 }

func parsePortRange(s string) (portRange, error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	if !isRange {
		hi = lo
	}
	a, err1 := strconv.ParseUint(lo, 10, 16)
	b, err2 := strconv.ParseUint(hi, 10, 16)
	if err1 != nil || err2 != nil || a == 0 || b < a {
		return portRange{}, fmt.Errorf("%q: want a port 1-65535 or a range lo-hi", s)
	}
	return portRange{uint16(a), uint16(b)}, nil
}

// validate checks one rule; key is "allow[i]".
func (a Allow) validate(key string, bad func(key, format string, args ...any)) {
	if len(a.Backends) == 0 {
		bad(key+".backends", "at least one backend is required")
	}
	for i, b := range a.Backends {
		if !nameRE.MatchString(b) {
			bad(fmt.Sprintf("%s.backends[%d]", key, i), "%q: letters, digits, . _ : - only", b)
		}
	}
	if len(a.Ports) == 0 {
		bad(key+".ports", "at least one port or range is required")
	}
	for i, p := range a.Ports {
		if _, err := parsePortRange(p); err != nil {
			bad(fmt.Sprintf("%s.ports[%d]", key, i), "%v", err)
		}
	}
}

// grants reports whether the rule lets vm join m.
func (a Allow) grants(vm *eventbus.VM, m member) bool {
	if !slices.Contains(a.Backends, m.Backend) {
		return false
	}
	if !slices.ContainsFunc(a.Ports, func(s string) bool {
		r, err := parsePortRange(s)
		return err == nil && m.Port >= r.lo && m.Port <= r.hi
	}) {
		return false
	}
	if len(a.Owners) > 0 && !slices.Contains(a.Owners, vm.Owner) {
		return false
	}
	if len(a.Groups) > 0 && !slices.Contains(a.Groups, vm.Group) && (vm.Project == "" || !slices.Contains(a.Groups, vm.Project)) {
		return false
	}
	if len(a.Labels) > 0 && !slices.ContainsFunc(vm.Labels, func(l string) bool {
		return slices.Contains(a.Labels, strings.TrimSpace(l))
	}) {
		return false
	}
	return true
}

// allowed returns nil when a rule of allow grants every membership of ms,
// else an error wrapping ErrNotAllowed that names the first one refused.
// Without rules no backend is open.
func allowed(allow []Allow, vm *eventbus.VM, ms []member) error {
	for _, m := range ms {
		if !slices.ContainsFunc(allow, func(a Allow) bool { return a.grants(vm, m) }) {
			return fmt.Errorf("%s:%d: %w (no lb.allow rule grants it)", m.Backend, m.Port, ErrNotAllowed)
		}
	}
	return nil
}
