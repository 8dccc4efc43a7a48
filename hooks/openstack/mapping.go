package openstack

import (
	"fmt"
	"strings"

	"github.com/vmglue/vmglue/eventbus"
)

// CloudType is the cloud_type of every event this package builds.
const CloudType = "openstack"

// Names a VM can take (Options.NameFrom).
const (
	NameDisplayName = "display_name"
	NameHostname    = "hostname"
)

// Options of the mapping.
type Options struct {
	// Cloud is the cloud name in subjects and sources.
	Cloud string
	// NameFrom is NameDisplayName (default) or NameHostname.
	NameFrom string
	// Secrets keeps the secret metadata off the bus (the zero value: the
	// default secret names, and the Puppet challenge left out: no key).
	Secrets eventbus.Secrets
}

// byState are the event types whose kind is the kind of the payload's
// vm_state (after the "compute." prefix of legacy types is removed).
var byState = map[string]bool{
	"instance.create.end": true, "instance.reboot.end": true, "instance.rebuild.end": true,
	"instance.resize_finish.end": true, "instance.live_migration_post.end": true,
	"instance.evacuate": true, "instance.unshelve.end": true, "instance.restore.end": true,
	"instance.soft_delete.end": true, "instance.shelve_offload.end": true,
	"instance.suspend.end": true, "instance.resume.end": true, "instance.pause.end": true,
	"instance.unpause.end": true, "instance.finish_resize.end": true,
}

// fixedKind are the event types with a kind of their own.
var fixedKind = map[string]string{
	"instance.power_on.end":         eventbus.KindRunning,
	"instance.power_off.start":      eventbus.KindStopping, // drain before the guest is off
	"instance.power_off.end":        eventbus.KindStopped,
	"instance.shutdown.end":         eventbus.KindStopped,
	"instance.delete.start":         eventbus.KindStopping,
	"instance.delete.end":           eventbus.KindDeleted,
	"instance.interface_attach.end": eventbus.KindChanging,
	"instance.interface_detach.end": eventbus.KindChanging,
}

// eventKind returns the kind of a notification about in, or "" to ignore it.
func eventKind(eventType string, in *instance) string {
	t := strings.TrimPrefix(eventType, "compute.")
	switch {
	case strings.HasSuffix(t, ".error") && (strings.HasPrefix(t, "instance.") || strings.HasPrefix(t, "compute_task.")):
		return eventbus.KindFailed
	case fixedKind[t] != "":
		return fixedKind[t]
	case byState[t]:
		return stateKind(in.State)
	case t == "instance.update":
		if in.OldState == "" || in.OldState == in.State {
			return "" // a task state change, or no change: nothing for the workers
		}
		return stateKind(in.State)
	}
	return ""
}

// stateKind maps Nova's vm_state to a kind.
func stateKind(state string) string {
	switch state {
	case "building":
		return eventbus.KindCreated
	case "active", "rescued", "resized":
		return eventbus.KindRunning
	case "stopped", "paused", "suspended", "shelved", "shelved_offloaded", "soft-delete", "soft_deleted":
		return eventbus.KindStopped
	case "error":
		return eventbus.KindFailed
	case "deleted":
		return eventbus.KindDeleted
	}
	return eventbus.KindUnknown
}

// Map returns the VM snapshot a notification describes. It returns an error
// wrapping ErrIgnored for a notification vmglue does not map, and one
// wrapping ErrInvalidMessage for a payload it cannot read.
func (o Options) Map(n Notification) (eventbus.VM, error) {
	var in instance
	var err error
	if n.Format == FormatVersioned {
		in, err = parseVersioned(n.Payload)
	} else {
		in, err = parseLegacy(n.Payload)
	}
	if err != nil {
		return eventbus.VM{}, err
	}
	kind := eventKind(n.EventType, &in)
	if kind == "" {
		return eventbus.VM{}, fmt.Errorf("%w: event type %.80q", ErrIgnored, n.EventType)
	}
	if in.UUID == "" {
		return eventbus.VM{}, fmt.Errorf("%w: %.80s without an instance uuid", ErrIgnored, n.EventType)
	}
	vm := eventbus.VM{
		Cloud: o.Cloud, CloudType: CloudType, ID: in.UUID, Name: in.DisplayName, Hostname: in.HostName,
		Owner: in.UserID, Project: in.ProjectID, Host: in.Host, State: in.State, LCMState: in.TaskState,
		Kind: kind, NICs: nics(in.Addresses), Labels: in.Tags, Flavor: in.Flavor, Image: in.Image,
	}
	if o.NameFrom == NameHostname && in.HostName != "" || vm.Name == "" {
		vm.Name = in.HostName
	}
	if len(in.Metadata) > 0 {
		vm.Attributes = in.Metadata
	}
	if !in.Created.IsZero() {
		t := in.Created
		vm.Times.Created = &t
	}
	if !in.Ended.IsZero() {
		t := in.Ended
		vm.Times.Ended = &t
	}
	// eventbus's order for Nova: Changed is updated_at, Observed the
	// notification's timestamp (Seq stays 0; the bridge stamps Seen).
	if !in.Updated.IsZero() {
		t := in.Updated
		vm.Times.Changed = &t
		vm.Version.Changed = t.UnixNano()
	}
	if !n.Timestamp.IsZero() {
		t := n.Timestamp
		vm.Times.Observed = &t
		vm.Version.Observed = t.UnixNano()
	}
	o.Secrets.Protect(&vm)
	return vm, nil
}

// nics maps the notification's addresses with NICs.
func nics(addrs []address) []eventbus.NIC {
	in := make([]Address, len(addrs))
	for i, a := range addrs {
		in[i] = Address{Network: a.Network, MAC: a.MAC, IP: a.IP, Device: a.Device}
	}
	return NICs(in)
}

// Event builds the event of a notification: Map, then eventbus.NewEvent
// with the id "<cloud>-<uuid>-<kind>-<message_id>" (NewEvent's own when the
// notification has no usable message_id).
func (o Options) Event(n Notification) (eventbus.Event, error) {
	vm, err := o.Map(n)
	if err != nil {
		return eventbus.Event{}, err
	}
	ev, err := eventbus.NewEvent(vm)
	if err != nil {
		return eventbus.Event{}, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	if eventbus.ValidToken(n.MessageID) {
		ev.ID = vm.Cloud + "-" + vm.ID + "-" + vm.Kind + "-" + n.MessageID
	}
	return ev, nil
}
