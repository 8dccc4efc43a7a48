// Package eventbus holds what every part of vmglue shares on the bus: the
// Event type (CloudEvents 1.0, structured JSON), its subjects, the names of the
// JetStream streams and KV buckets, and the publisher, consumer and embedded
// server helpers.
//
// # Ordering the snapshots of one VM
//
// Sources report a VM concurrently and out of order (HEM runs hooks in
// parallel, a spooled event arrives hours late, the hook, the ZeroMQ
// listener and the sweep report the same change at different times), so
// every consumer must agree which snapshot of a VM is the newest, whatever
// the order it sees them in. Compare is that total order:
//
//  1. A deleted snapshot (Kind deleted) is newer than any other: terminal.
//  2. Then the Version, field by field; each source fills every field it
//     can with a value that never decreases for one VM, 0 where it has none:
//     Seq, the cloud's own counter of the VM's transitions (OpenNebula: the
//     highest HISTORY SEQ; Nova has none); Changed, the cloud's time of the
//     VM's newest transition (OpenNebula: the newest STIME/ETIME of the VM
//     and its last HISTORY; Nova: updated_at); Observed, the cloud's time of
//     the snapshot (OpenNebula: LAST_POLL; Nova: the notification's
//     timestamp); Seen, when the vmglue source took the snapshot, on its own
//     clock (the hook: the start of the run; a listener: the receipt; the
//     sweep: the API read). Seen orders what the cloud does not: a NIC
//     hotplug leaves SEQ, STIME and LAST_POLL as they were.
//  3. Then the Digest of the content: a deterministic tie-break for two
//     different snapshots with equal versions (events written before Seen
//     existed), the same in the hook, the spool, every worker and after a
//     restart.
//
// Seen is not part of the event id nor of the Digest: a copy of one
// observation, sent again by a retried hook or a spool flush, or taken by a
// second source, is the same event. The stream drops such a copy within its
// duplicate window; after it, a consumer that remembers the Observations of
// the snapshots it already replaced recognizes the copy as late (the
// worker's snapshot store does), so it never rolls a VM back.
//
// The transition (PrevState, PrevLCMState: the state the VM left) is part
// of the event id and of the Observation, not of the Digest. A shutdown that
// fails brings an OpenNebula VM back to RUNNING with the document of the
// RUNNING before it (oned moves no time, no SEQ) but for PREV_LCM_STATE:
// with the transition it is a new event, newer by Seen, and no copy of the
// first RUNNING; a late copy of the SHUTDOWN event still is one. Sources
// that cannot see the transition (a body without PREV_*, Nova) leave it
// empty; their Observation is then the Digest, so nothing changes for them,
// and the sweep, which compares contents by Digest, sees no difference in a
// transition alone.
package eventbus

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SpecVersion is the CloudEvents version of every Event.
const SpecVersion = "1.0"

// FormatVersion is the version of vmglue's data payload. It is sent as the
// CloudEvents extension attribute "vmglueversion"; a consumer refuses a major
// version it does not know.
const FormatVersion = "1"

// Kinds of event, the suffix of the CloudEvents type "vm.<kind>".
const (
	KindCreated   = "created"   // PENDING or HOLD: the VM exists, not yet placed
	KindStarting  = "starting"  // PROLOG, BOOT*, restores: on its way to running
	KindRunning   = "running"   // ACTIVE/RUNNING
	KindChanging  = "changing"  // hotplug, snapshot, disk resize, backup while running
	KindMigrating = "migrating" // MIGRATE, SAVE_MIGRATE, PROLOG_MIGRATE*
	KindStopping  = "stopping"  // SHUTDOWN*, SAVE_*, EPILOG*: on its way to stopped or deleted
	KindStopped   = "stopped"   // POWEROFF, STOPPED, SUSPENDED, UNDEPLOYED
	KindUnknown   = "unknown"   // ACTIVE/UNKNOWN: the host cannot be monitored
	KindFailed    = "failed"    // *_FAILURE lcm states, CLONING_FAILURE
	KindDeleted   = "deleted"   // DONE, or deleted in OpenStack. Terminal.
)

// Kinds lists every kind, in lifecycle order.
var Kinds = []string{KindCreated, KindStarting, KindRunning, KindChanging, KindMigrating,
	KindStopping, KindStopped, KindUnknown, KindFailed, KindDeleted}

// TypePrefix is the prefix of the CloudEvents type: "vm.running".
const TypePrefix = "vm."

// Event is one CloudEvent in structured JSON mode.
type Event struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Subject         string    `json:"subject"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	// VmglueVersion is the CloudEvents extension "vmglueversion" (FormatVersion).
	VmglueVersion string `json:"vmglueversion"`
	// Origin is the CloudEvents extension "vmglueorigin": how vmglue learnt
	// of the snapshot when it was not a push source (the hook, a listener,
	// a bridge), e.g. OriginSweep. It is not part of the id: a hook and the
	// sweep that see the same snapshot make the same event.
	Origin string `json:"vmglueorigin,omitempty"`
	Data   VM     `json:"data"`
}

// OriginSweep marks an event the sweep of a cloud's API published.
const OriginSweep = "sweep"

// VM is the normalized snapshot of a virtual machine as the source gave it.
type VM struct {
	Cloud     string `json:"cloud"`
	CloudType string `json:"cloud_type"` // "opennebula" or "openstack"
	ID        string `json:"id"`
	Name      string `json:"name"`
	Hostname  string `json:"hostname,omitempty"`
	Owner     string `json:"owner,omitempty"`
	Group     string `json:"group,omitempty"`
	Project   string `json:"project,omitempty"`
	Host      string `json:"host,omitempty"`
	// State and LCMState are the source's own names (OpenNebula: "ACTIVE",
	// "RUNNING"; OpenStack: vm_state and task_state).
	State    string `json:"state"`
	LCMState string `json:"lcm_state,omitempty"`
	// PrevState and PrevLCMState name the state the VM left in the
	// transition the snapshot reports (OpenNebula's PREV_STATE and
	// PREV_LCM_STATE, which a state event's document carries), "" when the
	// source does not say (Nova; a body without them). They are part of
	// the event id and of the Observation, not of the Digest: a VM back in
	// RUNNING after a failed shutdown is a new transition with the content
	// it had before.
	PrevState    string `json:"prev_state,omitempty"`
	PrevLCMState string `json:"prev_lcm_state,omitempty"`
	Kind         string `json:"kind"`
	NICs         []NIC  `json:"nics"`
	// Labels are the source's labels (OpenNebula LABELS, comma separated).
	Labels []string `json:"labels,omitempty"`
	// Attributes are the user attributes: OpenNebula USER_TEMPLATE, Nova metadata.
	Attributes map[string]string `json:"attributes,omitempty"`
	// Cut names what NewEvent shortened to keep the event within its
	// limits (see MaxAttributeValue and the other limits), sorted: "name",
	// "hostname", "owner", "group", "project", "host", "labels",
	// "attributes" (some left out) or "attribute:NAME" (that value cut).
	// A worker must not take a cut value for the whole one.
	Cut []string `json:"cut,omitempty"`
	// Flavor and Image are OpenStack's flavor name and image id (empty for OpenNebula).
	Flavor string `json:"flavor,omitempty"`
	Image  string `json:"image,omitempty"`
	Times  Times  `json:"times"`
	// Version orders snapshots of the same VM; see Version and Compare.
	Version Version `json:"version"`
}

// NIC is one network interface, or an alias of one.
type NIC struct {
	ID        string `json:"id"`
	Name      string `json:"name,omitempty"`
	Network   string `json:"network,omitempty"`
	NetworkID string `json:"network_id,omitempty"`
	IP        string `json:"ip,omitempty"`
	IP6       string `json:"ip6,omitempty"`
	IP6Global string `json:"ip6_global,omitempty"`
	IP6ULA    string `json:"ip6_ula,omitempty"`
	MAC       string `json:"mac,omitempty"`
	// Alias is true for an OpenNebula NIC_ALIAS; Parent then names its NIC.
	Alias  bool   `json:"alias,omitempty"`
	Parent string `json:"parent,omitempty"`
}

// Times are the source's own timestamps. Zero values are omitted.
type Times struct {
	Created  *time.Time `json:"created,omitempty"`
	Ended    *time.Time `json:"ended,omitempty"`
	Changed  *time.Time `json:"changed,omitempty"`  // the newest transition time the source gives
	Observed *time.Time `json:"observed,omitempty"` // when the source last looked (LAST_POLL)
}

// Key returns the KV key of the VM: "<cloud>.<id>".
func (vm *VM) Key() string { return vm.Cloud + "." + vm.ID }

// Deleted reports whether the snapshot is terminal: its Kind is
// KindDeleted. This is the one notion of "deleted": older events also
// carry "version": {"deleted": true}, always with this kind; it is ignored
// when decoded.
func (vm *VM) Deleted() bool { return vm.Kind == KindDeleted }

var (
	// ErrInvalidEvent is wrapped by every validation error of an Event.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrUnknownVersion is wrapped by Unmarshal's error for an event whose
	// vmglueversion has a major version this build does not know (a newer
	// producer): an upgraded consumer can read it, a retry then helps.
	ErrUnknownVersion = errors.New("unknown vmglueversion")
)

// KnownVersion reports whether v (an event's vmglueversion, "<major>" or
// "<major>.<minor>") has the major version of FormatVersion.
func KnownVersion(v string) bool {
	major, _, _ := strings.Cut(v, ".")
	want, _, _ := strings.Cut(FormatVersion, ".")
	return major == want
}

// ValidToken reports whether s can be used as a subject token (cloud name,
// VM id): letters, digits, '-' and '_'.
// At most 128 characters. (A loop, not a regexp: the hook starts fresh for
// every event and a compiled regexp costs start-up time.)
func ValidToken(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// NewEvent builds the Event for a snapshot: it fills the CloudEvents
// attributes (source from vm.CloudType and vm.Cloud) and the deterministic id.
// It bounds what the VM's owner controls (attributes, labels, names: see
// MaxAttributeValue and the other limits), marking in VM.Cut what it cut,
// so the event fits in one NATS message; an event that still exceeds
// MaxEventSize (only NICs can make it so) is an error wrapping ErrTooLarge.
func NewEvent(vm VM) (Event, error) {
	if !ValidToken(vm.Cloud) {
		return Event{}, fmt.Errorf("%w: cloud name %q: use letters, digits, '-' and '_'", ErrInvalidEvent, vm.Cloud)
	}
	if !ValidToken(vm.ID) {
		return Event{}, fmt.Errorf("%w: vm id %q: use letters, digits, '-' and '_'", ErrInvalidEvent, vm.ID)
	}
	if !ValidKind(vm.Kind) {
		return Event{}, fmt.Errorf("%w: kind %q", ErrInvalidEvent, vm.Kind)
	}
	if vm.NICs == nil {
		vm.NICs = []NIC{}
	}
	vm.bound()
	t := time.Unix(0, max(vm.Version.Changed, vm.Version.Observed)).UTC()
	if vm.Version.Changed == 0 && vm.Version.Observed == 0 {
		t = time.Unix(0, 0).UTC()
	}
	e := Event{
		SpecVersion:     SpecVersion,
		Source:          vm.CloudType + "://" + vm.Cloud,
		Type:            TypePrefix + vm.Kind,
		Subject:         "vm/" + vm.ID,
		Time:            t,
		DataContentType: "application/json",
		VmglueVersion:   FormatVersion,
		Data:            vm,
	}
	id, err := eventID(vm)
	if err != nil {
		return Event{}, err
	}
	e.ID = id
	if err := checkSize(&e); err != nil {
		return Event{}, err
	}
	return e, nil
}

// eventID is deterministic: the same snapshot always gives the same id, so a
// retried hook is dropped by the stream's duplicate window, while a snapshot
// that differs in any field (a hotplugged NIC, a new state, the state it
// came from) gets a new id. Version.Seen is not part of it: two copies of
// one observation, taken at different times or by different sources, are
// one event. Its last part is the VM's Observation.
func eventID(vm VM) (string, error) {
	o, err := vm.observation(true)
	if err != nil {
		return "", fmt.Errorf("encode vm: %w", err)
	}
	return vm.Cloud + "-" + vm.ID + "-" + vm.Kind + "-" + strconv.FormatInt(vm.Version.Seq, 10) + "-" + o, nil
}

// ValidKind reports whether k is one of Kinds.
func ValidKind(k string) bool { return slices.Contains(Kinds, k) }

// NATSSubject returns the NATS subject of the event: vmglue.vm.<cloud>.<vmid>.<kind>.
func (e *Event) NATSSubject() string {
	return SubjectPrefix + "." + e.Data.Cloud + "." + e.Data.ID + "." + e.Data.Kind
}

// Validate checks an Event read from the bus or the spool.
func (e *Event) Validate() error {
	if e.SpecVersion != SpecVersion {
		return fmt.Errorf("%w: specversion %q", ErrInvalidEvent, e.SpecVersion)
	}
	if e.VmglueVersion == "" {
		return fmt.Errorf("%w: no vmglueversion", ErrInvalidEvent)
	}
	if e.ID == "" {
		return fmt.Errorf("%w: empty id", ErrInvalidEvent)
	}
	if !ValidToken(e.Data.Cloud) || !ValidToken(e.Data.ID) || !ValidKind(e.Data.Kind) {
		return fmt.Errorf("%w: cloud %q, vm %q, kind %q", ErrInvalidEvent, e.Data.Cloud, e.Data.ID, e.Data.Kind)
	}
	if e.Type != TypePrefix+e.Data.Kind {
		return fmt.Errorf("%w: type %q does not match kind %q", ErrInvalidEvent, e.Type, e.Data.Kind)
	}
	return nil
}

// Marshal encodes the event as one line of JSON.
func (e *Event) Marshal() ([]byte, error) { return json.Marshal(e) }

// Unmarshal decodes and validates an event. An event of an unknown major
// version (see KnownVersion) is refused with ErrUnknownVersion before it is
// validated: its shape may differ. One without vmglueversion is invalid.
func Unmarshal(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	if e.VmglueVersion != "" && !KnownVersion(e.VmglueVersion) {
		return Event{}, fmt.Errorf("%w %q, this vmglue reads %s", ErrUnknownVersion, e.VmglueVersion, FormatVersion)
	}
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}
