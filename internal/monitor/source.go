package monitor

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/vmglue/vmglue/eventbus"
)

// A source names where a host variable or a Prometheus label takes its
// value from: "attribute:<NAME>", "label:<label>" or "field:<name>".
var fields = map[string]func(vm *eventbus.VM) string{
	"owner":    func(vm *eventbus.VM) string { return vm.Owner },
	"group":    func(vm *eventbus.VM) string { return vm.Group },
	"project":  func(vm *eventbus.VM) string { return vm.Project },
	"host":     func(vm *eventbus.VM) string { return vm.Host },
	"hostname": func(vm *eventbus.VM) string { return vm.Hostname },
	"cloud":    func(vm *eventbus.VM) string { return vm.Cloud },
	"id":       func(vm *eventbus.VM) string { return vm.ID },
	"name":     func(vm *eventbus.VM) string { return vm.Name },
}

func checkSource(src string) error {
	kind, name, ok := strings.Cut(src, ":")
	switch {
	case !ok || name == "":
		return errors.New(`want "attribute:<NAME>", "label:<label>" or "field:<name>"`)
	case kind == "attribute", kind == "label":
		return nil
	case kind == "field":
		if fields[name] == nil {
			return errors.New("field: want one of owner, group, project, host, hostname, cloud, id, name")
		}
		return nil
	}
	return errors.New(`want "attribute:<NAME>", "label:<label>" or "field:<name>"`)
}

// lookup returns the value of a (checked) source for vm; "" when the VM
// has none.
func lookup(vm *eventbus.VM, src string) string {
	kind, name, _ := strings.Cut(src, ":")
	switch kind {
	case "attribute":
		return clean(vm.Attributes[name])
	case "label":
		if slices.Contains(vm.Labels, name) {
			return "true"
		}
		return ""
	}
	return clean(fields[name](vm))
}

// maxValue bounds a value taken from the VM (tenant input).
const maxValue = 1024

// clean makes a tenant's value safe to store: valid UTF-8 (invalid bytes
// become U+FFFD), at most maxValue bytes.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) > maxValue {
		s = s[:maxValue]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

// hostName is what Icinga accepts as an object name and what vmglue
// allows: letters, digits, '.', '_', '-', starting with a letter or
// digit, at most 253 bytes. Icinga itself refuses '!' and stores names in
// file names; vmglue is stricter so that no tenant name reaches a filter
// expression or a path.
var hostName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`)

// ValidHostName reports whether name is a host object name vmglue creates.
func ValidHostName(name string) bool {
	return hostName.MatchString(name) && !strings.Contains(name, "..")
}
