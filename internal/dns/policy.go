package dns

import (
	"fmt"
	"maps"
	"path"
	"strings"

	"github.com/vmglue/vmglue/eventbus"
)

// DefaultDenyNames are the host labels no VM may take unless deny_names
// says otherwise: names that clients resolve on their own to find a proxy
// (wpad), a tunnel router (isatap) or themselves (localhost), and every
// label starting with "_" (service and policy names: _ldap._tcp,
// _dmarc, _acme-challenge).
var DefaultDenyNames = []string{"wpad", "isatap", "localhost", "_*"}

// hostName renders the name template and returns the normalized fully
// qualified name inside the zone the config assigns. The VM's fields are
// the tenant's: they may choose the labels the template gives them, never
// add labels or make the name absolute. So the template is rendered twice,
// with the VM's fields and with a copy whose dots are dashes: both must
// give as many labels, the one absoluteness. A relative name goes into the
// first forward zone and may not fall into another configured zone below
// it; an absolute one (a template ending in ".") into the longest forward
// zone holding it. A label matching deny_names is refused.
func (t *Target) hostName(vm *eventbus.VM) (string, error) {
	raw, err := t.render(vm)
	if err != nil {
		return "", err
	}
	n, err := Normalize(raw)
	if err != nil {
		return "", fmt.Errorf("vm %s name: %w", vm.Key(), err)
	}
	plain, err := t.render(dotless(vm))
	if err != nil {
		return "", err
	}
	p, err := Normalize(plain)
	if err != nil {
		return "", fmt.Errorf("vm %s name: %w", vm.Key(), err)
	}
	if strings.Count(n, ".") != strings.Count(p, ".") {
		return "", fmt.Errorf("vm %s name: %w: %q: the vm's name or attributes may not add labels or end in a dot (name_template gives %q)",
			vm.Key(), errInvalidName, raw, p)
	}
	zone := zoneOf(n, t.forward)
	if !strings.HasSuffix(n, ".") {
		n += "." + t.forward[0]
		if z := zoneOf(n, t.forward); z != t.forward[0] {
			return "", fmt.Errorf("vm %s name: %w: %q falls into zone %s, not %s", vm.Key(), errInvalidName, n, z, t.forward[0])
		}
		zone = t.forward[0]
	}
	switch {
	case zone == "":
		return "", fmt.Errorf("vm %s name: %w: %q is outside every forward zone %v", vm.Key(), errInvalidName, n, t.forward)
	case zone == n:
		return "", fmt.Errorf("vm %s name: %w: %q is the zone apex", vm.Key(), errInvalidName, n)
	case len(n) > 254:
		return "", fmt.Errorf("vm %s name: %w: %q is longer than 253 bytes", vm.Key(), errInvalidName, n)
	}
	host := strings.TrimSuffix(n, "."+zone)
	if l, pat := t.denied(raw, host); pat != "" {
		return "", fmt.Errorf("vm %s name: %w: label %q of %q is denied (dns.deny_names %q)", vm.Key(), errInvalidName, l, n, pat)
	}
	return n, nil
}

func (t *Target) render(vm *eventbus.VM) (string, error) {
	var b strings.Builder
	if err := t.tmpl.Execute(&b, vm); err != nil {
		return "", fmt.Errorf("render dns.name_template: %w", err)
	}
	return b.String(), nil
}

// denied returns the first label of the host part (the name without its
// zone, normalized) or of the raw rendered name (lower case, before
// normalization drops a leading "_") that a deny_names pattern matches,
// and the pattern; "" when none does.
func (t *Target) denied(raw, host string) (string, string) {
	labels := strings.Split(host, ".")
	labels = append(labels, strings.Split(strings.ToLower(strings.TrimSpace(raw)), ".")...)
	for _, l := range labels {
		for _, pat := range t.cfg.DenyNames {
			if ok, _ := path.Match(strings.ToLower(pat), l); ok {
				return l, pat
			}
		}
	}
	return "", ""
}

// dotless returns a copy of vm whose tenant-chosen fields have every '.'
// replaced by '-'.
func dotless(vm *eventbus.VM) *eventbus.VM {
	d := func(s string) string { return strings.ReplaceAll(s, ".", "-") }
	c := *vm
	c.Name, c.Hostname, c.Owner, c.Group, c.Project, c.Host = d(c.Name), d(c.Hostname), d(c.Owner), d(c.Group), d(c.Project), d(c.Host)
	c.Labels = make([]string, len(vm.Labels))
	for i, l := range vm.Labels {
		c.Labels[i] = d(l)
	}
	c.Attributes = maps.Clone(vm.Attributes)
	for k, v := range c.Attributes {
		c.Attributes[k] = d(v)
	}
	return &c
}
