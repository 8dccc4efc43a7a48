package nova

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/openstack"
)

// server is the part of a Nova server (GET /servers/detail, microversion
// 2.3) that a snapshot holds.
type server struct {
	ID        string               `json:"id"`
	Name      string               `json:"name"`
	TenantID  string               `json:"tenant_id"`
	UserID    string               `json:"user_id"`
	Status    string               `json:"status"`
	Created   time.Time            `json:"created"`
	Updated   time.Time            `json:"updated"`
	Addresses map[string][]address `json:"addresses"`
	Metadata  map[string]string    `json:"metadata"`
	Host      string               `json:"OS-EXT-SRV-ATTR:host"`
	Hostname  string               `json:"OS-EXT-SRV-ATTR:hostname"`
	VMState   string               `json:"OS-EXT-STS:vm_state"`
	TaskState string               `json:"OS-EXT-STS:task_state"`
}

// address is one entry of a network's address list.
type address struct {
	Addr    string `json:"addr"`
	Version int    `json:"version"`
	Type    string `json:"OS-EXT-IPS:type"` // fixed or floating
	MAC     string `json:"OS-EXT-IPS-MAC:mac_addr"`
}

// vm maps the server as the Nova bridge maps a notification: the name
// chosen as o.NameFrom says, the vm_state
// as State, the task_state as LCMState, the metadata as attributes (secret
// ones protected), one NIC per network and MAC with its fixed addresses
// (floating ones are Neutron's, and not in Nova's notifications either).
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
		NICs:       nics(s.Addresses),
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

// nics groups the fixed addresses by network and MAC, in network order.
func nics(addrs map[string][]address) []eventbus.NIC {
	out := []eventbus.NIC{}
	nets := make([]string, 0, len(addrs))
	for n := range addrs {
		nets = append(nets, n)
	}
	slices.Sort(nets)
	for _, net := range nets {
		byMAC := map[string]*eventbus.NIC{}
		var order []*eventbus.NIC
		for _, a := range addrs[net] {
			if a.Type == "floating" {
				continue
			}
			n := byMAC[a.MAC]
			if n == nil {
				n = &eventbus.NIC{Network: net, MAC: a.MAC}
				byMAC[a.MAC] = n
				order = append(order, n)
			}
			switch {
			case a.Version == 6 && n.IP6 == "":
				n.IP6 = a.Addr
			case a.Version != 6 && n.IP == "":
				n.IP = a.Addr
			}
		}
		slices.SortStableFunc(order, func(a, b *eventbus.NIC) int { return cmp.Compare(strings.ToLower(a.MAC), strings.ToLower(b.MAC)) })
		for _, n := range order {
			n.ID = strconv.Itoa(len(out))
			out = append(out, *n)
		}
	}
	return out
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
