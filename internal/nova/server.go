package nova

import (
	"fmt"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/openstack"
)

// server is the part of a Nova server (GET /servers/detail, microversion
// 2.3) that a snapshot holds.
type server struct {
	ID        string                            `json:"id"`
	Name      string                            `json:"name"`
	TenantID  string                            `json:"tenant_id"`
	UserID    string                            `json:"user_id"`
	Status    string                            `json:"status"`
	Created   time.Time                         `json:"created"`
	Updated   time.Time                         `json:"updated"`
	Addresses map[string][]openstack.APIAddress `json:"addresses"`
	Metadata  map[string]string                 `json:"metadata"`
	Host      string                            `json:"OS-EXT-SRV-ATTR:host"`
	Hostname  string                            `json:"OS-EXT-SRV-ATTR:hostname"`
	VMState   string                            `json:"OS-EXT-STS:vm_state"`
	TaskState string                            `json:"OS-EXT-STS:task_state"`
}

// vm maps the server as the Nova bridge maps a notification: the name
// chosen as o.NameFrom says, the vm_state
// as State, the task_state as LCMState, the metadata as attributes (secret
// ones protected), its fixed addresses as NICs as the bridge maps
// notifications (openstack.APINICs).
func (s *server) vm(o *Options) (eventbus.VM, error) {
	if !eventbus.ValidToken(s.ID) {
		return eventbus.VM{}, fmt.Errorf("%w: id %q", ErrInvalidServer, s.ID)
	}
	vm := eventbus.VM{
		Cloud:      o.Cloud,
		CloudType:  "openstack",
		ID:         s.ID,
		Name:       s.Name,
		Hostname:   s.Hostname,
		Owner:      s.UserID,
		Project:    s.TenantID,
		Host:       s.Host,
		State:      s.VMState,
		LCMState:   s.TaskState,
		Kind:       Kind(s.VMState, s.TaskState),
		NICs:       openstack.APINICs(s.Addresses),
		Attributes: s.Metadata,
		Version:    eventbus.Version{Changed: nanos(s.Updated)},
	}
	if len(vm.Attributes) == 0 {
		vm.Attributes = nil
	}
	if o.NameFrom == openstack.NameHostname && s.Hostname != "" || vm.Name == "" {
		vm.Name = s.Hostname // as the bridge names it
	}
	vm.Times.Created = utc(s.Created)
	vm.Times.Changed = utc(s.Updated)
	if o.Protect == nil {
		eventbus.Secrets{}.Protect(&vm)
	} else {
		o.Protect(&vm)
	}
	return vm, nil
}

// Kind maps Nova's vm_state (and a task under way) to a vmglue kind.
func Kind(vmState, taskState string) string {
	switch taskState {
	case "deleting", "soft-deleting", "shelving", "powering-off":
		return eventbus.KindStopping
	case "migrating", "resize_migrating", "resize_migrated":
		return eventbus.KindMigrating
	}
	switch vmState {
	case "building":
		return eventbus.KindStarting
	case "active", "resized":
		return eventbus.KindRunning
	case "rescued":
		return eventbus.KindChanging
	case "stopped", "paused", "suspended", "shelved", "shelved_offloaded", "soft-delete":
		return eventbus.KindStopped
	case "error":
		return eventbus.KindFailed
	case "deleted":
		return eventbus.KindDeleted
	}
	return eventbus.KindUnknown
}

func utc(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
