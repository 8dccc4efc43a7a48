package opennebula

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"

	"github.com/vmglue/vmglue/eventbus"
)

// StateKeyPrefix begins the key of every VM state message on oned's
// ZeroMQ stream: "EVENT STATE VM/<STATE>/<LCM_STATE>/<id> ". A subscription
// filter is a prefix of it that ends in "/" ("EVENT STATE VM/ACTIVE/BOOT"
// would also match ACTIVE/BOOT_UNKNOWN).
const StateKeyPrefix = "EVENT STATE VM/"

// StateKey is a parsed VM state key of oned's ZeroMQ stream.
type StateKey struct {
	State, LCMState string // names, e.g. "ACTIVE", "RUNNING"
	ID              string // the VM id, canonical decimal
}

// ParseStateKey reads a key as one_hm builds it: "EVENT STATE
// VM/<STATE>/<LCM_STATE>/<id>" followed by one space (also accepted
// without it). Any other key (a HOST, IMAGE or API event, the "EVENT VM
// <id>/..." form) is an error that wraps ErrInvalidInput.
func ParseStateKey(key []byte) (StateKey, error) {
	s := strings.TrimSuffix(string(key), " ")
	rest, ok := strings.CutPrefix(s, StateKeyPrefix)
	if !ok {
		return StateKey{}, fmt.Errorf("%w: key %s is not a VM state key (%q...)", ErrInvalidInput, clip(s), StateKeyPrefix)
	}
	f := strings.Split(rest, "/")
	if len(f) != 3 || f[0] == "" || f[1] == "" {
		return StateKey{}, fmt.Errorf("%w: key %s: want %s<STATE>/<LCM_STATE>/<id>", ErrInvalidInput, clip(s), StateKeyPrefix)
	}
	id, err := strconv.ParseUint(f[2], 10, 31)
	if err != nil {
		return StateKey{}, fmt.Errorf("%w: key %s: VM id is not a number", ErrInvalidInput, clip(s))
	}
	return StateKey{State: f[0], LCMState: f[1], ID: strconv.FormatUint(id, 10)}, nil
}

// HookMessage is a state message of oned's hook manager, as one_hm
// publishes it on its ZeroMQ stream (the second frame, base64 decoded):
//
//	<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>VM</HOOK_OBJECT>
//	<STATE>ACTIVE</STATE><LCM_STATE>RUNNING</LCM_STATE><RESOURCE_ID>42</RESOURCE_ID>
//	<REMOTE_HOST>host01</REMOTE_HOST><VM>...</VM></HOOK_MESSAGE>
type HookMessage struct {
	Type, Object    string // HOOK_TYPE, HOOK_OBJECT: "STATE", "VM"
	State, LCMState string // STATE and LCM_STATE names
	ResourceID      string // RESOURCE_ID
	// VM is the mapped <VM> element, as ParseVM maps a VM document, its
	// secrets protected.
	VM eventbus.VM
}

// ParseHookMessage decodes the second frame of a VM state message: strict
// standard base64 (no line breaks, as oned encodes it) of a HOOK_MESSAGE
// whose HOOK_TYPE is STATE, HOOK_OBJECT is VM, and whose VM element has
// RESOURCE_ID as its ID. Anything else (an API or HOST message, a missing
// VM) is an error that wraps ErrInvalidInput and quotes no more than a few
// bytes of the input.
//
// protect keeps the VM's secrets off the bus, as for ParseHookInput (the
// listener passes the same policy as the hook, so that both make the same
// event of one change); nil protects with eventbus.Secrets{}.
func ParseHookMessage(frame []byte, cloud string, protect func(*eventbus.VM)) (HookMessage, error) {
	if err := checkCloud(cloud); err != nil {
		return HookMessage{}, err
	}
	if n := int64(len(frame)) / 4 * 3; n-2 > MaxInputSize {
		return HookMessage{}, tooLarge(n)
	}
	if i := bytes.IndexAny(frame, "\r\n"); i >= 0 {
		return HookMessage{}, fmt.Errorf("decode hook message: %w: line break at offset %d: want base64 without line breaks", ErrInvalidInput, i)
	}
	doc := make([]byte, strictBase64.DecodedLen(len(frame)))
	n, err := strictBase64.Decode(doc, frame)
	if err != nil {
		return HookMessage{}, fmt.Errorf("decode hook message: %w", base64Error(err, len(frame)))
	}
	m, err := parseHookMessage(doc[:n], cloud)
	if err != nil {
		return HookMessage{}, fmt.Errorf("parse hook message: %w", err)
	}
	if protect == nil {
		protect = func(vm *eventbus.VM) { eventbus.Secrets{}.Protect(vm) }
	}
	protect(&m.VM)
	return m, nil
}

func parseHookMessage(doc []byte, cloud string) (HookMessage, error) {
	r := newReader(doc)
	start, err := r.root()
	if err != nil {
		return HookMessage{}, invalid(err)
	}
	if start.Name.Local != "HOOK_MESSAGE" {
		return HookMessage{}, fmt.Errorf("%w: root element is %s, want HOOK_MESSAGE", ErrInvalidInput, clip(start.Name.Local))
	}
	var m HookMessage
	var vm *node
	scalars := map[string]*string{"HOOK_TYPE": &m.Type, "HOOK_OBJECT": &m.Object, "STATE": &m.State,
		"LCM_STATE": &m.LCMState, "RESOURCE_ID": &m.ResourceID}
	for done := false; !done; {
		tok, err := r.d.Token()
		if err != nil {
			return HookMessage{}, invalid(eofIsUnexpected(err))
		}
		switch t := tok.(type) {
		case xml.StartElement:
			r.off = 1 // below HOOK_MESSAGE
			switch name := t.Name.Local; {
			case name == "VM" && vm == nil:
				vm = &node{name: "VM"}
				err = r.read(vm, []string{"VM"}, keepVM)
			case scalars[name] != nil:
				leaf := &node{name: name}
				err = r.read(leaf, []string{name}, func([]string) bool { return false })
				*scalars[name] = leaf.str()
			default:
				err = r.skip(1)
			}
			r.off = 0
			if err != nil {
				return HookMessage{}, invalid(err)
			}
		case xml.EndElement:
			done = true
		}
	}
	if err := r.end(); err != nil {
		return HookMessage{}, invalid(err)
	}
	if m.Type != "STATE" || m.Object != "VM" {
		return HookMessage{}, fmt.Errorf("%w: a %s message about %s, want a STATE message about a VM", ErrInvalidInput, clip(m.Type), clip(m.Object))
	}
	if vm == nil {
		return HookMessage{}, fmt.Errorf("%w: no VM element in the message", ErrInvalidInput)
	}
	if m.VM, err = mapVM(vm, cloud); err != nil {
		return HookMessage{}, invalid(err)
	}
	if m.VM.ID != m.ResourceID {
		return HookMessage{}, fmt.Errorf("%w: RESOURCE_ID %s but VM ID %s", ErrInvalidInput, clip(m.ResourceID), clip(m.VM.ID))
	}
	return m, nil
}
