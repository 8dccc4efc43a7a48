package openstack

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// instance is what vmglue reads from either payload format.
type instance struct {
	UUID, UserID, ProjectID    string
	DisplayName, HostName      string
	Host                       string
	State, OldState, TaskState string
	Flavor, Image              string
	Addresses                  []address
	Metadata                   map[string]string
	Tags                       []string
	Created, Updated, Ended    time.Time
	Fault                      bool
}

// address is one fixed IP of a port.
type address struct {
	Device, Network, MAC, IP string
}

// novaObject is the wrapper of a serialized oslo.versionedobject.
type novaObject[T any] struct {
	Name    string `json:"nova_object.name"`
	Version string `json:"nova_object.version"`
	Data    T      `json:"nova_object.data"`
}

// maxMajor is the highest nova_object major version vmglue reads
// (InstanceUpdatePayload is 2.x, every other instance payload 1.x).
const maxMajor = 2

type versionedInstance struct {
	UUID        string  `json:"uuid"`
	UserID      string  `json:"user_id"`
	TenantID    string  `json:"tenant_id"`
	DisplayName string  `json:"display_name"`
	HostName    string  `json:"host_name"`
	Host        *string `json:"host"`
	State       string  `json:"state"`
	TaskState   *string `json:"task_state"`
	Flavor      *novaObject[struct {
		Name     string `json:"name"`
		FlavorID string `json:"flavorid"`
	}] `json:"flavor"`
	ImageUUID   string `json:"image_uuid"`
	IPAddresses []novaObject[struct {
		Label   string `json:"label"`
		MAC     string `json:"mac"`
		Address string `json:"address"`
		Device  string `json:"device_name"`
	}] `json:"ip_addresses"`
	Metadata     map[string]string `json:"metadata"`
	Tags         []string          `json:"tags"`
	CreatedAt    *string           `json:"created_at"`
	UpdatedAt    *string           `json:"updated_at"`
	TerminatedAt *string           `json:"terminated_at"`
	DeletedAt    *string           `json:"deleted_at"`
	Fault        json.RawMessage   `json:"fault"`
	StateUpdate  *novaObject[struct {
		OldState string `json:"old_state"`
		State    string `json:"state"`
	}] `json:"state_update"`
}

func parseVersioned(raw json.RawMessage) (instance, error) {
	var o novaObject[versionedInstance]
	if err := json.Unmarshal(raw, &o); err != nil {
		return instance{}, fmt.Errorf("%w: versioned payload: %s", ErrInvalidMessage, jsonProblem(err))
	}
	if err := checkMajor(o.Name, o.Version); err != nil {
		return instance{}, err
	}
	d := o.Data
	in := instance{
		UUID: d.UUID, UserID: d.UserID, ProjectID: d.TenantID, DisplayName: d.DisplayName,
		HostName: d.HostName, Host: deref(d.Host), State: d.State, TaskState: deref(d.TaskState),
		Image: d.ImageUUID, Metadata: d.Metadata, Tags: d.Tags,
		Fault: len(d.Fault) > 0 && string(d.Fault) != "null",
	}
	if d.Flavor != nil {
		in.Flavor = d.Flavor.Data.Name
	}
	if d.StateUpdate != nil {
		in.OldState, in.State = d.StateUpdate.Data.OldState, d.StateUpdate.Data.State
	}
	for _, a := range d.IPAddresses {
		in.Addresses = append(in.Addresses, address{Device: a.Data.Device, Network: a.Data.Label, MAC: a.Data.MAC, IP: a.Data.Address})
	}
	var err error
	if in.Created, err = optTime("created_at", d.CreatedAt); err != nil {
		return instance{}, err
	}
	if in.Updated, err = optTime("updated_at", d.UpdatedAt); err != nil {
		return instance{}, err
	}
	if in.Ended, err = optTime("deleted_at", d.DeletedAt); err != nil || !in.Ended.IsZero() {
		return in, err
	}
	in.Ended, err = optTime("terminated_at", d.TerminatedAt)
	return in, err
}

func checkMajor(name, version string) error {
	major, _, _ := strings.Cut(version, ".")
	n, err := strconv.Atoi(major)
	if err != nil || n < 1 || n > maxMajor {
		return fmt.Errorf("%w: payload %.40s version %.10q: vmglue reads major versions 1 to %d", ErrInvalidMessage, name, version, maxMajor)
	}
	return nil
}

type legacyInstance struct {
	InstanceID       string         `json:"instance_id"`
	UserID           string         `json:"user_id"`
	TenantID         string         `json:"tenant_id"`
	DisplayName      string         `json:"display_name"`
	Hostname         string         `json:"hostname"`
	Host             *string        `json:"host"`
	State            string         `json:"state"`
	OldState         string         `json:"old_state"`
	StateDescription string         `json:"state_description"`
	InstanceType     string         `json:"instance_type"`
	ImageMeta        map[string]any `json:"image_meta"`
	FixedIPs         []struct {
		Address string `json:"address"`
		Label   string `json:"label"`
		MAC     string `json:"vif_mac"`
	} `json:"fixed_ips"`
	Metadata     legacyMetadata  `json:"metadata"`
	CreatedAt    *string         `json:"created_at"`
	TerminatedAt *string         `json:"terminated_at"`
	DeletedAt    *string         `json:"deleted_at"`
	Exception    json.RawMessage `json:"exception"`
}

// legacyMetadata is a dict, or in old releases a list of {key, value}.
type legacyMetadata map[string]string

func (m *legacyMetadata) UnmarshalJSON(b []byte) error {
	var dict map[string]string
	if err := json.Unmarshal(b, &dict); err == nil {
		*m = dict
		return nil
	}
	var list []struct{ Key, Value string }
	if err := json.Unmarshal(b, &list); err != nil {
		return err
	}
	if len(list) > 0 {
		*m = make(legacyMetadata, len(list))
		for _, kv := range list {
			(*m)[kv.Key] = kv.Value
		}
	}
	return nil
}

func parseLegacy(raw json.RawMessage) (instance, error) {
	var d legacyInstance
	if err := json.Unmarshal(raw, &d); err != nil {
		return instance{}, fmt.Errorf("%w: legacy payload: %s", ErrInvalidMessage, jsonProblem(err))
	}
	in := instance{
		UUID: d.InstanceID, UserID: d.UserID, ProjectID: d.TenantID, DisplayName: d.DisplayName,
		HostName: d.Hostname, Host: deref(d.Host), State: d.State, OldState: d.OldState,
		TaskState: d.StateDescription, Flavor: d.InstanceType, Metadata: d.Metadata,
		Fault: len(d.Exception) > 0 && string(d.Exception) != "null",
	}
	if ref, ok := d.ImageMeta["base_image_ref"].(string); ok {
		in.Image = ref
	}
	for _, ip := range d.FixedIPs { // no port id: NICID keys the NICs by MAC, as for the other sources
		in.Addresses = append(in.Addresses, address{Network: ip.Label, MAC: ip.MAC, IP: ip.Address})
	}
	var err error
	if in.Created, err = optTime("created_at", d.CreatedAt); err != nil {
		return instance{}, err
	}
	if in.Ended, err = optTime("deleted_at", d.DeletedAt); err != nil || !in.Ended.IsZero() {
		return in, err
	}
	in.Ended, err = optTime("terminated_at", d.TerminatedAt)
	return in, err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// optTime parses an optional time: null and "" are zero.
func optTime(key string, s *string) (time.Time, error) {
	if s == nil || *s == "" {
		return time.Time{}, nil
	}
	t, err := parseTime(*s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s: %v", ErrInvalidMessage, key, err)
	}
	return t, nil
}
