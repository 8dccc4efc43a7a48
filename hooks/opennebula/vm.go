package opennebula

import (
	"encoding/xml"
	"errors"
	"fmt"

	"github.com/vmglue/vmglue/eventbus"
)

// ErrInvalidInput is wrapped by every error that the hook input or an XML
// document causes (as opposed to a bad cloud name, which is configuration).
var ErrInvalidInput = errors.New("invalid input")

// ParseVM reads one <VM> document, as one.vm.info returns it or a hook's
// $TEMPLATE decodes to, and maps it as the package documentation describes.
// The document may be at most MaxInputSize bytes. Secret attributes are
// redacted and the challenge attribute is left out (eventbus.Secrets
// without a key): a caller holding the challenge key parses hook input.
func ParseVM(xmlDoc []byte, cloud string) (eventbus.VM, error) {
	return ParseVMWith(xmlDoc, cloud, nil)
}

// ParseVMWith is ParseVM with the source's protection of secrets (as for
// ParseHookInput; nil: eventbus.Secrets{}): the sweep protects with the
// hook's challenge key, so that both make the same snapshot.
func ParseVMWith(xmlDoc []byte, cloud string, protect func(*eventbus.VM)) (eventbus.VM, error) {
	if err := checkCloud(cloud); err != nil {
		return eventbus.VM{}, err
	}
	vm, _, err := parseVM(xmlDoc, cloud)
	if err != nil {
		return eventbus.VM{}, fmt.Errorf("parse vm: %w", err)
	}
	protectVM(&vm, protect)
	return vm, nil
}

func protectVM(vm *eventbus.VM, protect func(*eventbus.VM)) {
	if protect == nil {
		eventbus.Secrets{}.Protect(vm)
		return
	}
	protect(vm)
}

// ParsePool reads a <VM_POOL> document (one.vmpool.info or infoextended) and
// maps each <VM> in it, in document order. Other children of VM_POOL are
// ignored. The pool has no size limit: the caller bounds what it reads.
// Secrets are protected as by ParseVM.
func ParsePool(xmlDoc []byte, cloud string) ([]eventbus.VM, error) {
	return ParsePoolWith(xmlDoc, cloud, nil)
}

// ParsePoolWith is ParsePool with the source's protection of secrets, as
// ParseVMWith.
func ParsePoolWith(xmlDoc []byte, cloud string, protect func(*eventbus.VM)) ([]eventbus.VM, error) {
	if err := checkCloud(cloud); err != nil {
		return nil, err
	}
	vms, err := parsePool(xmlDoc, cloud)
	if err != nil {
		return nil, fmt.Errorf("parse vm pool: %w", err)
	}
	for i := range vms {
		protectVM(&vms[i], protect)
	}
	return vms, nil
}

// parseVM returns errors that wrap ErrInvalidInput, without a prefix, and
// what it replaced to read doc.
func parseVM(doc []byte, cloud string) (eventbus.VM, *Repairs, error) {
	vm, r, err := parseVMReader(doc, cloud)
	if r == nil {
		return vm, nil, err
	}
	r.fix.note(1<<62, []string{"VM"})
	return vm, r.fix, err
}

func parseVMReader(doc []byte, cloud string) (eventbus.VM, *reader, error) {
	if len(doc) > MaxInputSize {
		return eventbus.VM{}, nil, tooLarge(int64(len(doc)))
	}
	r := newReader(doc)
	start, err := r.root()
	if err != nil {
		return eventbus.VM{}, r, invalid(err)
	}
	if start.Name.Local != "VM" {
		return eventbus.VM{}, r, fmt.Errorf("%w: root element is %s, want VM", ErrInvalidInput, clip(start.Name.Local))
	}
	n := &node{name: "VM"}
	if err := r.read(n, []string{"VM"}, keepVM); err != nil {
		return eventbus.VM{}, r, invalid(err)
	}
	if err := r.end(); err != nil {
		return eventbus.VM{}, r, invalid(err)
	}
	vm, err := mapVM(n, cloud)
	if err != nil {
		return eventbus.VM{}, r, invalid(err)
	}
	return vm, r, nil
}

func parsePool(doc []byte, cloud string) ([]eventbus.VM, error) {
	r := newReader(doc)
	start, err := r.root()
	if err != nil {
		return nil, invalid(err)
	}
	if start.Name.Local != "VM_POOL" {
		return nil, fmt.Errorf("%w: root element is %s, want VM_POOL", ErrInvalidInput, clip(start.Name.Local))
	}
	vms := []eventbus.VM{}
	for {
		tok, err := r.d.Token()
		if err != nil {
			return nil, invalid(eofIsUnexpected(err))
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Local != "VM" {
				if err := r.skip(2); err != nil {
					return nil, invalid(err)
				}
				continue
			}
			n := &node{name: "VM"}
			r.off = 1
			err := r.read(n, []string{"VM"}, keepVM)
			r.off = 0
			if err != nil {
				return nil, invalid(err)
			}
			vm, err := mapVM(n, cloud)
			if err != nil {
				return nil, invalid(fmt.Errorf("VM #%d of the pool: %w", len(vms)+1, err))
			}
			vms = append(vms, vm)
		case xml.EndElement:
			if err := r.end(); err != nil {
				return nil, invalid(err)
			}
			return vms, nil
		}
	}
}

// invalid wraps ErrInvalidInput around the one-line text of err.
func invalid(err error) error {
	return fmt.Errorf("%w: %s", ErrInvalidInput, oneLine(err.Error()))
}

func tooLarge(n int64) error {
	return fmt.Errorf("%w: input is too large (VM XML of %d bytes, max %d)", ErrInvalidInput, n, MaxInputSize)
}

func checkCloud(cloud string) error {
	if !eventbus.ValidToken(cloud) {
		return fmt.Errorf("check cloud name: %w: %s: use 1-128 letters, digits, '-' and '_'", eventbus.ErrInvalidEvent, clip(cloud))
	}
	return nil
}
