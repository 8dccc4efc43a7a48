package opennebula

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vmglue/vmglue/eventbus"
)

// maxUnix is the latest accepted timestamp (2242-03-16), so that Unix
// nanoseconds fit in an int64 and times encode as RFC 3339.
const maxUnix = 1<<33 - 1

// historyTimes are the HISTORY timestamps that Times.Changed considers.
var historyTimes = []string{"STIME", "ETIME", "PSTIME", "PETIME", "RSTIME", "RETIME", "ESTIME", "EETIME"}

// mapVM turns the tree of a <VM> element into an eventbus.VM.
func mapVM(n *node, cloud string) (eventbus.VM, error) {
	id, err := number(n, "VM", "ID", true)
	if err != nil {
		return eventbus.VM{}, err
	}
	state, err := number(n, "VM", "STATE", true)
	if err != nil {
		return eventbus.VM{}, err
	}
	lcm, err := number(n, "VM", "LCM_STATE", true)
	if err != nil {
		return eventbus.VM{}, err
	}
	prev, prevLCM, err := prevState(n)
	if err != nil {
		return eventbus.VM{}, err
	}
	stime, err := timestamp(n, "VM", "STIME")
	if err != nil {
		return eventbus.VM{}, err
	}
	etime, err := timestamp(n, "VM", "ETIME")
	if err != nil {
		return eventbus.VM{}, err
	}
	poll, err := timestamp(n, "VM", "LAST_POLL")
	if err != nil {
		return eventbus.VM{}, err
	}
	seq, last, err := lastHistory(n.child("HISTORY_RECORDS"))
	if err != nil {
		return eventbus.VM{}, err
	}
	changed := max(stime, etime)
	for _, name := range historyTimes {
		t, err := timestamp(last, "HISTORY", name)
		if err != nil {
			return eventbus.VM{}, err
		}
		changed = max(changed, t)
	}
	nics := mapNICs(n.child("TEMPLATE"))
	user := n.child("USER_TEMPLATE")
	vm := eventbus.VM{
		Cloud:        cloud,
		CloudType:    "opennebula",
		ID:           strconv.FormatInt(id, 10),
		Name:         text(n, "NAME"),
		Hostname:     hostname(n),
		Owner:        text(n, "UNAME"),
		Group:        text(n, "GNAME"),
		Host:         text(last, "HOSTNAME"),
		State:        StateName(int(state)),
		LCMState:     LCMStateName(int(lcm)),
		PrevState:    prev,
		PrevLCMState: prevLCM,
		Kind:         Kind(int(state), int(lcm)),
		NICs:         nics,
		Labels:       labels(text(user, "LABELS")),
		Attributes:   attributes(user),
		Times: eventbus.Times{
			Created:  utc(stime),
			Ended:    utc(etime),
			Changed:  utc(changed),
			Observed: utc(poll),
		},
		Version: eventbus.Version{
			Seq:      seq,
			Changed:  nanos(changed),
			Observed: nanos(poll),
		},
	}
	return vm, nil
}

// prevState returns the names of PREV_STATE and PREV_LCM_STATE, the state
// the VM's transition left; both "" when the document has no PREV_STATE
// (the API's short pool bodies).
func prevState(n *node) (state, lcm string, err error) {
	if s, _ := n.value("PREV_STATE"); s == "" {
		return "", "", nil
	}
	st, err := number(n, "VM", "PREV_STATE", true)
	if err != nil {
		return "", "", err
	}
	l, err := number(n, "VM", "PREV_LCM_STATE", false)
	if err != nil {
		return "", "", err
	}
	return StateName(int(st)), LCMStateName(int(l)), nil
}

// number reads a non-negative integer child of n. A missing or empty child
// is 0, or an error when required.
func number(n *node, path, name string, required bool) (int64, error) {
	s, _ := n.value(name)
	if s == "" {
		if required {
			return 0, fmt.Errorf("missing %s/%s", path, name)
		}
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > 1<<31-1 {
		return 0, fmt.Errorf("%s/%s %s is not a number from 0 to 2^31-1", path, name, clip(s))
	}
	return v, nil
}

// timestamp reads an epoch-seconds child of n; 0 and below mean unset.
func timestamp(n *node, path, name string) (int64, error) {
	s, _ := n.value(name)
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v > maxUnix {
		return 0, fmt.Errorf("%s/%s %s is not a Unix time", path, name, clip(s))
	}
	return max(v, 0), nil
}

// lastHistory returns the highest SEQ and its HISTORY, or -1 and nil.
// Among equal SEQs the first one wins.
func lastHistory(records *node) (int64, *node, error) {
	seq, last := int64(-1), (*node)(nil)
	for _, h := range records.children("HISTORY") {
		s, err := number(h, "HISTORY", "SEQ", true)
		if err != nil {
			return 0, nil, err
		}
		if s > seq {
			seq, last = s, h
		}
	}
	return seq, last, nil
}

func text(n *node, name string) string {
	s, _ := n.value(name)
	return s
}

func hostname(n *node) string {
	if h := text(n.child("USER_TEMPLATE"), "HOSTNAME"); h != "" {
		return h
	}
	return text(n.child("TEMPLATE").child("CONTEXT"), "SET_HOSTNAME")
}

// mapNICs collects NIC, PCI with TYPE=NIC and NIC_ALIAS, sorted by NIC_ID.
func mapNICs(tmpl *node) []eventbus.NIC {
	nics := []eventbus.NIC{}
	for _, c := range tmpl.children("") {
		alias := c.name == "NIC_ALIAS"
		switch {
		case c.name == "NIC", alias:
		case c.name == "PCI" && strings.EqualFold(text(c, "TYPE"), "NIC"):
		default:
			continue
		}
		nic := eventbus.NIC{
			ID:        text(c, "NIC_ID"),
			Name:      text(c, "NAME"),
			Network:   text(c, "NETWORK"),
			NetworkID: text(c, "NETWORK_ID"),
			IP:        text(c, "IP"),
			IP6:       text(c, "IP6"),
			IP6Global: text(c, "IP6_GLOBAL"),
			IP6ULA:    text(c, "IP6_ULA"),
			MAC:       text(c, "MAC"),
			Alias:     alias,
		}
		if alias {
			nic.Parent = text(c, "PARENT")
		}
		nics = append(nics, nic)
	}
	slices.SortStableFunc(nics, compareNICs)
	return nics
}

// compareNICs orders by NIC_ID as a number (non-numbers last, by text), then
// NICs before aliases.
func compareNICs(a, b eventbus.NIC) int {
	ai, aerr := strconv.ParseUint(a.ID, 10, 64)
	bi, berr := strconv.ParseUint(b.ID, 10, 64)
	switch {
	case aerr == nil && berr == nil && ai != bi:
		return cmp.Compare(ai, bi)
	case (aerr == nil) != (berr == nil):
		if aerr == nil {
			return -1
		}
		return 1
	case aerr != nil && a.ID != b.ID:
		return strings.Compare(a.ID, b.ID)
	}
	switch {
	case a.Alias == b.Alias:
		return 0
	case b.Alias:
		return -1
	}
	return 1
}

// labels splits a LABELS value on commas; it drops empty and repeated labels.
func labels(s string) []string {
	var out []string
	seen := map[string]bool{}
	for l := range strings.SplitSeq(s, ",") {
		l = strings.TrimSpace(l)
		if l != "" && !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	return out
}

// attributes returns the scalar children of USER_TEMPLATE, nil if none.
func attributes(user *node) map[string]string {
	var attrs map[string]string
	for _, c := range user.children("") {
		if c.nested {
			continue
		}
		if attrs == nil {
			attrs = map[string]string{}
		}
		if _, dup := attrs[c.name]; !dup {
			attrs[c.name] = c.str()
		}
	}
	return attrs
}

func utc(sec int64) *time.Time {
	if sec <= 0 {
		return nil
	}
	t := time.Unix(sec, 0).UTC()
	return &t
}

func nanos(sec int64) int64 {
	if sec <= 0 {
		return 0
	}
	return time.Unix(sec, 0).UnixNano()
}
