package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// Object keys of the Icinga output.
const (
	hostPrefix     = "host/"     // "host/<name>" → hostSpec as JSON
	downtimePrefix = "downtime/" // "downtime/<name>" → the downtime's comment
	downtimeAuthor = "vmglue"
	ownerVar       = "vmglue_owner" // the ownership marker
	vmVar          = "vmglue_vm"    // "<cloud>.<id>": which VM holds the name
)

// hostSpec is a host object as vmglue writes it: imported templates and
// attributes ("address", "address6", "display_name", "check_command",
// "vars.<name>"). Its JSON (sorted keys) is the object's value.
type hostSpec struct {
	Templates []string          `json:"templates"`
	Attrs     map[string]string `json:"attrs"`
}

func (s hostSpec) value() string {
	b, _ := json.Marshal(s)
	return string(b)
}

func parseSpec(v string) (hostSpec, error) {
	var s hostSpec
	err := json.Unmarshal([]byte(v), &s)
	return s, err
}

// desiredHost adds the host and downtime objects of vm to want.
func (t *Target) desiredHost(vm *eventbus.VM, want worker.Objects) error {
	c := t.cfg.Icinga
	if vm.Deleted() || !slices.Contains(c.PresentKinds, vm.Kind) {
		return nil
	}
	var b strings.Builder
	if err := t.hostTmpl.Execute(&b, vm); err != nil {
		return worker.Permanent(fmt.Errorf("monitor.icinga.host_name of %s: %w", vm.Key(), err))
	}
	name := b.String()
	if !ValidHostName(name) {
		return worker.Permanent(fmt.Errorf("host name %q of %s: not a valid Icinga object name (letters, digits, '.', '_', '-')", clean(name), vm.Key()))
	}
	s := hostSpec{Templates: slices.Clone(c.Templates), Attrs: map[string]string{
		"display_name":     clean(vm.Name),
		"vars." + ownerVar: t.owner,
		"vars." + vmVar:    vm.Key(),
	}}
	if c.CheckCommand != "" {
		s.Attrs["check_command"] = c.CheckCommand
	}
	if a := firstAddr(vm, false); a != "" {
		s.Attrs["address"] = a
	}
	if a := firstAddr(vm, true); a != "" {
		s.Attrs["address6"] = a
	}
	for k, src := range c.Vars {
		if v := lookup(vm, src); v != "" {
			s.Attrs["vars."+k] = v
		}
	}
	opted := slices.Clone(vm.Labels)
	if c.TemplateAttribute != "" {
		opted = append(opted, strings.Split(vm.Attributes[c.TemplateAttribute], ",")...)
	}
	for _, l := range opted {
		if tpl, ok := c.LabelTemplates[strings.TrimSpace(l)]; ok && !slices.Contains(s.Templates, tpl) {
			s.Templates = append(s.Templates, tpl)
		}
	}
	want[hostPrefix+name] = s.value()
	if slices.Contains(c.DowntimeKinds, vm.Kind) {
		state := vm.State
		if vm.LCMState != "" {
			state += "/" + vm.LCMState
		}
		want[downtimePrefix+name] = clean(fmt.Sprintf("vmglue: VM %s vm.%s (%s)", vm.Key(), vm.Kind, state))
	}
	return nil
}

// firstAddr is the first valid address of the VM's NICs (IPv4, or IPv6
// preferring global ones); NICs before aliases.
func firstAddr(vm *eventbus.VM, v6 bool) string {
	for _, alias := range []bool{false, true} {
		for _, n := range vm.NICs {
			if n.Alias != alias {
				continue
			}
			cands := []string{n.IP}
			if v6 {
				cands = []string{n.IP6Global, n.IP6, n.IP6ULA}
			}
			for _, c := range cands {
				if a, err := netip.ParseAddr(c); err == nil && a.Is4() != v6 && a.Zone() == "" {
					return a.String()
				}
			}
		}
	}
	return ""
}

// applyHosts converges the Icinga objects of req into res: downtimes that
// go, then hosts, then downtimes that must exist.
func (t *Target) applyHosts(ctx context.Context, req worker.Request, res worker.Objects) error {
	keys := func(m worker.Objects, prefix string) []string {
		var out []string
		for k := range m {
			if strings.HasPrefix(k, prefix) {
				out = append(out, k)
			}
		}
		slices.Sort(out)
		return out
	}
	for _, k := range keys(req.Have, downtimePrefix) {
		if req.Want[k] == req.Have[k] {
			continue
		}
		if err := t.ic.removeDowntime(ctx, strings.TrimPrefix(k, downtimePrefix), req.Have[k]); err != nil {
			return err
		}
		delete(res, k)
	}
	for _, k := range keys(req.Want, hostPrefix) {
		if err := t.putHost(ctx, req.VM.Key(), strings.TrimPrefix(k, hostPrefix), req.Have[k], req.Want[k]); err != nil {
			return err
		}
		res[k] = req.Want[k]
	}
	for _, k := range keys(req.Want, downtimePrefix) {
		if err := t.ensureDowntime(ctx, strings.TrimPrefix(k, downtimePrefix), req.Want[k]); err != nil {
			return err
		}
		res[k] = req.Want[k]
	}
	for _, k := range keys(req.Have, hostPrefix) {
		if _, ok := req.Want[k]; ok {
			continue
		}
		if err := t.deleteHost(ctx, req.VM, strings.TrimPrefix(k, hostPrefix)); err != nil {
			return err
		}
		delete(res, k)
		delete(res, downtimePrefix+strings.TrimPrefix(k, hostPrefix)) // cascade
	}
	return nil
}

// ensureDowntime schedules vmglue's downtime of the host with comment
// unless it exists.
func (t *Target) ensureDowntime(ctx context.Context, name, comment string) error {
	ok, err := t.ic.hasDowntime(ctx, name, comment)
	if err != nil || ok {
		return err
	}
	now := time.Now()
	return t.ic.scheduleDowntime(ctx, name, comment, now.Unix(), now.Add(t.cfg.Icinga.DowntimeDuration).Unix())
}

// owned checks the ownership marker of an existing host: vmglue's
// (owner_id) and the VM's (its key).
func (t *Target) owned(vmKey, name string, h *hostState) error {
	if t.ours(vmKey, h) {
		return nil
	}
	t.m.conflicts.Inc()
	return worker.Permanent(fmt.Errorf("icinga host %q is not %s's (vars.%s=%q, vars.%s=%q): %w",
		name, vmKey, ownerVar, clean(fmt.Sprint(h.Vars[ownerVar])), vmVar, clean(fmt.Sprint(h.Vars[vmVar])), worker.ErrConflict))
}

// putHost makes the host exist as want says: create it, or verify and
// update it in place; templates or variables that go need a re-create.
func (t *Target) putHost(ctx context.Context, vmKey, name, have, want string) error {
	ws, err := parseSpec(want)
	if err != nil {
		return fmt.Errorf("host %s: %w", name, err)
	}
	h, err := t.ic.getHost(ctx, name)
	if errors.Is(err, errNotFound) {
		return t.ic.createHost(ctx, name, ws)
	}
	if err != nil {
		return err
	}
	if err := t.owned(vmKey, name, h); err != nil {
		return err
	}
	cur := currentAttrs(h, ws, have)
	if slices.Equal(h.Templates, ws.Templates) && maps.Equal(cur, ws.Attrs) {
		return nil
	}
	gone := false
	for k := range cur {
		_, keep := ws.Attrs[k]
		gone = gone || !keep
	}
	if gone || !slices.Equal(h.Templates, ws.Templates) {
		t.log.Debug().Str("vm", vmKey).Str("host", name).Msg("re-creating icinga host (templates or variables removed)")
		if err := t.ic.deleteHost(ctx, name); err != nil {
			return err
		}
		return t.ic.createHost(ctx, name, ws)
	}
	return t.ic.modifyHost(ctx, name, ws.Attrs)
}

// currentAttrs is what the host holds of the attributes vmglue writes: the
// wanted ones and those of the spec applied before (have).
func currentAttrs(h *hostState, want hostSpec, have string) map[string]string {
	names := slices.Collect(maps.Keys(want.Attrs))
	if hs, err := parseSpec(have); err == nil {
		names = append(names, slices.Collect(maps.Keys(hs.Attrs))...)
	}
	cur := map[string]string{}
	for _, n := range names {
		var v string
		switch n {
		case "address":
			v = h.Address
		case "address6":
			v = h.Address6
		case "display_name":
			v = h.DisplayName
		case "check_command":
			v = h.CheckCmd
		default:
			if x, ok := h.Vars[strings.TrimPrefix(n, "vars.")]; ok && x != nil {
				v = fmt.Sprint(x)
			}
		}
		if v != "" {
			cur[n] = v
		}
	}
	return cur
}

// deleteHost deletes the VM's host with cascade=1; a foreign host is left
// alone and forgotten (logged, counted).
func (t *Target) deleteHost(ctx context.Context, vm *eventbus.VM, name string) error {
	h, err := t.ic.getHost(ctx, name)
	if errors.Is(err, errNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := t.owned(vm.Key(), name, h); err != nil {
		t.log.Warn().Str("vm", vm.Key()).Str("host", name).Err(err).Msg("not deleting a host vmglue does not own")
		return nil
	}
	return t.ic.deleteHost(ctx, name)
}
