package openstack

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
)

// wire wraps an inner oslo message in the 2.0 envelope, as Nova sends it.
func wire(t testing.TB, inner map[string]any) []byte {
	t.Helper()
	return Envelope(mustMarshal(t, inner))
}

// versioned returns a versioned instance notification with the given data
// fields over a running instance with one dual-stack port.
func versioned(eventType string, data map[string]any) map[string]any {
	d := map[string]any{
		"uuid": "6c7f3a0e-1111-4222-8333-444455556666", "display_name": "web1", "host_name": "web-1",
		"user_id": "u1", "tenant_id": "p1", "host": "cmp1", "state": "active", "task_state": nil,
		"updated_at": "2026-12-03T09:00:00Z", "created_at": "2026-12-03T08:59:00Z",
		"metadata": map[string]string{"LB_BACKENDS": "web:8080", "db_password": "hunter2"},
		"tags":     []string{"web"},
		"flavor":   map[string]any{"nova_object.name": "FlavorPayload", "nova_object.version": "1.4", "nova_object.data": map[string]any{"name": "m1.tiny"}},
		"ip_addresses": []any{
			ipPayload("port-1", 4, "192.0.2.10"), ipPayload("port-1", 6, "2001:db8::10"), ipPayload("port-1", 4, "192.0.2.11"),
		},
	}
	for k, v := range data {
		d[k] = v
	}
	return map[string]any{
		"message_id": "9f1a2b3c-0000-4000-8000-00000000000a", "publisher_id": "nova-compute:cmp1",
		"event_type": eventType, "priority": "INFO", "timestamp": "2026-12-03 09:00:01.500000",
		"_context_auth_token": "gAAAAAsecret-token", "_context_user_name": "alice",
		"payload": map[string]any{"nova_object.name": "InstanceActionPayload", "nova_object.version": "1.8", "nova_object.data": d},
	}
}

func ipPayload(port string, version int, addr string) map[string]any {
	return map[string]any{"nova_object.name": "IpPayload", "nova_object.version": "1.0", "nova_object.data": map[string]any{
		"label": "net1", "mac": "fa:16:3e:00:00:01", "port_uuid": port, "version": version, "address": addr, "device_name": "tap1"}}
}

func TestMapKinds(t *testing.T) {
	stateUpdate := func(old, cur string) map[string]any {
		return map[string]any{"state": cur, "state_update": map[string]any{"nova_object.name": "InstanceStateUpdatePayload",
			"nova_object.version": "1.0", "nova_object.data": map[string]any{"old_state": old, "state": cur}}}
	}
	tests := []struct {
		name, eventType string
		data            map[string]any
		want            string // kind, "" for ignored
	}{
		{"create active", "instance.create.end", nil, eventbus.KindRunning},
		{"create building", "instance.create.end", map[string]any{"state": "building"}, eventbus.KindCreated},
		{"create error event", "instance.create.error", nil, eventbus.KindFailed},
		{"power off start", "instance.power_off.start", nil, eventbus.KindStopping},
		{"power off", "instance.power_off.end", map[string]any{"state": "stopped"}, eventbus.KindStopped},
		{"shutdown", "instance.shutdown.end", nil, eventbus.KindStopped},
		{"power on", "instance.power_on.end", nil, eventbus.KindRunning},
		{"delete start", "instance.delete.start", nil, eventbus.KindStopping},
		{"delete end", "instance.delete.end", map[string]any{"state": "deleted", "ip_addresses": []any{}}, eventbus.KindDeleted},
		{"attach", "instance.interface_attach.end", nil, eventbus.KindChanging},
		{"detach", "instance.interface_detach.end", nil, eventbus.KindChanging},
		{"update state change", "instance.update", stateUpdate("building", "active"), eventbus.KindRunning},
		{"update to error", "instance.update", stateUpdate("active", "error"), eventbus.KindFailed},
		{"update task only", "instance.update", stateUpdate("active", "active"), ""},
		{"migration", "instance.live_migration_post.end", nil, eventbus.KindRunning},
		{"shelved", "instance.shelve_offload.end", map[string]any{"state": "shelved_offloaded", "host": nil}, eventbus.KindStopped},
		{"exists", "instance.exists", nil, ""},
		{"create start", "instance.create.start", map[string]any{"state": "building"}, ""},
		{"volume", "instance.volume_attach.end", nil, ""},
		{"no uuid", "instance.power_on.end", map[string]any{"uuid": ""}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Decode(wire(t, versioned(tt.eventType, tt.data)))
			if err != nil {
				t.Fatal(err)
			}
			vm, err := Options{Cloud: testCloud}.Map(n)
			if tt.want == "" {
				if !errors.Is(err, ErrIgnored) {
					t.Fatalf("Map = %v, %v; want ErrIgnored", vm.Kind, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if vm.Kind != tt.want {
				t.Fatalf("kind %q, want %q", vm.Kind, tt.want)
			}
			if vm.Deleted() != (tt.want == eventbus.KindDeleted) {
				t.Fatalf("deleted %v for kind %s", vm.Deleted(), vm.Kind)
			}
		})
	}
}

func TestMapFields(t *testing.T) {
	n, err := Decode(wire(t, versioned("instance.create.end", nil)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ nameFrom, want string }{{"", "web1"}, {NameDisplayName, "web1"}, {NameHostname, "web-1"}} {
		vm, err := Options{Cloud: testCloud, NameFrom: tt.nameFrom}.Map(n)
		if err != nil {
			t.Fatal(err)
		}
		if vm.Name != tt.want || vm.Hostname != "web-1" {
			t.Errorf("NameFrom %q: name %q hostname %q, want name %q", tt.nameFrom, vm.Name, vm.Hostname, tt.want)
		}
	}
	ev, err := Options{Cloud: testCloud}.Event(n)
	if err != nil {
		t.Fatal(err)
	}
	vm := ev.Data
	want := []eventbus.NIC{
		{ID: "fa:16:3e:00:00:01", Name: "tap1", Network: "net1", IP: "192.0.2.10", IP6: "2001:db8::10", MAC: "fa:16:3e:00:00:01"},
		{ID: "fa:16:3e:00:00:01-1", Network: "net1", IP: "192.0.2.11", MAC: "fa:16:3e:00:00:01", Alias: true, Parent: "fa:16:3e:00:00:01"},
	}
	if got, _ := json.Marshal(vm.NICs); string(got) != mustJSON(t, want) {
		t.Errorf("nics %s, want %s", got, mustJSON(t, want))
	}
	switch {
	case ev.ID != testCloud+"-6c7f3a0e-1111-4222-8333-444455556666-running-9f1a2b3c-0000-4000-8000-00000000000a":
		t.Errorf("event id %q does not carry the message_id", ev.ID)
	case ev.Source != "openstack://"+testCloud || vm.CloudType != CloudType:
		t.Errorf("source %q cloud type %q", ev.Source, vm.CloudType)
	case vm.Owner != "u1" || vm.Project != "p1" || vm.Host != "cmp1" || vm.Flavor != "m1.tiny":
		t.Errorf("owner %q project %q host %q flavor %q", vm.Owner, vm.Project, vm.Host, vm.Flavor)
	case vm.Attributes["LB_BACKENDS"] != "web:8080" || vm.Attributes["db_password"] != eventbus.RedactedValue:
		t.Errorf("attributes %v: want LB_BACKENDS as is and db_password redacted", vm.Attributes)
	case len(vm.Labels) != 1 || vm.Labels[0] != "web":
		t.Errorf("labels %v", vm.Labels)
	case vm.Version.Observed != time.Date(2026, 12, 3, 9, 0, 1, 500e6, time.UTC).UnixNano():
		t.Errorf("version.observed %d is not the notification's timestamp", vm.Version.Observed)
	case vm.Version.Changed != time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC).UnixNano():
		t.Errorf("version.changed %d is not updated_at", vm.Version.Changed)
	}
}

// TestVersionOrder: a later notification is newer; a delete wins over
// anything, also over a later one; a redelivered one has the same id.
func TestVersionOrder(t *testing.T) {
	at := func(eventType, ts string, data map[string]any) eventbus.Event {
		m := versioned(eventType, data)
		m["timestamp"] = ts
		m["message_id"] = "m-" + strings.NewReplacer(" ", "", ":", "", ".", "").Replace(ts)
		n, err := Decode(wire(t, m))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := Options{Cloud: testCloud}.Event(n)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	create := at("instance.create.end", "2026-12-03 09:00:01.000001", nil)
	off := at("instance.power_off.end", "2026-12-03 09:00:02.000001", map[string]any{"state": "stopped"})
	del := at("instance.delete.end", "2026-12-03 09:00:03", map[string]any{"state": "deleted"})
	late := at("instance.power_on.end", "2026-12-03 09:00:04", nil)
	if eventbus.Compare(&off.Data, &create.Data) <= 0 {
		t.Error("power_off.end after create.end is not newer")
	}
	if eventbus.Compare(&del.Data, &late.Data) <= 0 {
		t.Error("a later power_on.end wins over delete.end")
	}
	if again := at("instance.create.end", "2026-12-03 09:00:01.000001", nil); again.ID != create.ID {
		t.Errorf("redelivered notification: id %q, first %q", again.ID, create.ID)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
