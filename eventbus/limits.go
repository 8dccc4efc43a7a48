package eventbus

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits of what a VM owner (a tenant) controls in an event, so that every
// event fits in one NATS message (1 MiB by default) whatever the tenant
// writes into its VM. NewEvent applies them; see VM.Cut.
const (
	// MaxAttributeValue is the longest attribute value kept, in bytes; a
	// longer one is cut to it.
	MaxAttributeValue = 4 << 10
	// MaxAttributeName is the longest attribute name kept, in bytes; an
	// attribute with a longer name is left out.
	MaxAttributeName = 128
	// MaxAttributes is the most bytes of names and values all attributes
	// of one VM may take together; attributes are kept in name order until
	// the next one would pass it, the others are left out.
	MaxAttributes = 64 << 10
	// MaxText is the longest name, hostname, owner, group, project, host
	// or label kept, in bytes; a longer one is cut to it.
	MaxText = 1 << 10
	// MaxLabels is the most bytes all labels of one VM may take together;
	// labels past it are left out.
	MaxLabels = 8 << 10
	// MaxEventSize is the largest encoded event NewEvent returns, well
	// below NATS' default max_payload (1 MiB). Only the VM's identity,
	// state, times and NICs can take it there (the tenant controls none of
	// them); such an event is refused with ErrTooLarge.
	MaxEventSize = 768 << 10
)

// Marks in VM.Cut.
const (
	// CutAttributes means attributes were left out (MaxAttributes or
	// MaxAttributeName).
	CutAttributes = "attributes"
	// CutAttributePrefix starts the mark of one attribute whose value was
	// cut to MaxAttributeValue: "attribute:NAME".
	CutAttributePrefix = "attribute:"
	// CutLabels means labels were cut or left out (MaxText, MaxLabels).
	CutLabels = "labels"
)

// ErrTooLarge is wrapped by the error of an event that cannot be made to
// fit MaxEventSize. It is permanent: the same VM gives the same error.
var ErrTooLarge = errors.New("event too large")

// bound applies the limits above to the tenant-controlled fields of vm and
// records in vm.Cut what it shortened. Identity, state, times and NICs are
// never changed. It is idempotent. The caller's Attributes map and Labels
// slice are not modified: vm gets its own copies.
func (vm *VM) bound() {
	vm.Attributes, vm.Labels = maps.Clone(vm.Attributes), slices.Clone(vm.Labels)
	cut := map[string]bool{}
	for _, c := range vm.Cut {
		cut[c] = true
	}
	for name, f := range map[string]*string{"name": &vm.Name, "hostname": &vm.Hostname,
		"owner": &vm.Owner, "group": &vm.Group, "project": &vm.Project, "host": &vm.Host} {
		if len(*f) > MaxText {
			*f, cut[name] = clipUTF8(*f, MaxText), true
		}
	}
	vm.boundLabels(cut)
	vm.boundAttributes(cut)
	vm.Cut = nil
	for c := range cut {
		vm.Cut = append(vm.Cut, c)
	}
	slices.Sort(vm.Cut)
	if len(vm.Cut) == 0 {
		vm.Cut = nil
	}
}

func (vm *VM) boundLabels(cut map[string]bool) {
	total := 0
	for i, l := range vm.Labels {
		if len(l) > MaxText {
			l, cut[CutLabels] = clipUTF8(l, MaxText), true
			vm.Labels[i] = l
		}
		if total+len(l) > MaxLabels {
			vm.Labels, cut[CutLabels] = vm.Labels[:i], true
			return
		}
		total += len(l)
	}
}

func (vm *VM) boundAttributes(cut map[string]bool) {
	names := make([]string, 0, len(vm.Attributes))
	for k := range vm.Attributes {
		names = append(names, k)
	}
	slices.Sort(names)
	total := 0
	for _, k := range names {
		v := vm.Attributes[k]
		if len(k) > MaxAttributeName || total+len(k)+min(len(v), MaxAttributeValue) > MaxAttributes {
			delete(vm.Attributes, k)
			cut[CutAttributes] = true
			continue
		}
		if len(v) > MaxAttributeValue {
			v = clipUTF8(v, MaxAttributeValue)
			vm.Attributes[k] = v
			cut[CutAttributePrefix+k] = true
		}
		total += len(k) + len(v)
	}
}

// clipUTF8 cuts s to at most n bytes without splitting a character.
func clipUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.ToValidUTF8(s[:n], "")
}

// checkSize refuses an encoded event larger than MaxEventSize.
func checkSize(e *Event) error {
	b, err := e.Marshal()
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	if len(b) > MaxEventSize {
		return fmt.Errorf("%w: %d bytes encoded with %d NICs, max %d", ErrTooLarge, len(b), len(e.Data.NICs), MaxEventSize)
	}
	return nil
}
