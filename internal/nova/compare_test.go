package nova_test

import (
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/nova"
)

// TestComparable: the Nova bridge's snapshot of a server (port ids, tap
// device, flavor, image, an older updated_at) and the sweep's listing of it
// compare the same; a difference the API shows does not.
func TestComparable(t *testing.T) {
	created := time.Date(2026, 12, 3, 13, 18, 54, 0, time.UTC)
	bridged, later := created.Add(3*time.Second), created.Add(9*time.Second)
	listed := func() eventbus.VM {
		return eventbus.VM{Cloud: "os1", CloudType: "openstack", ID: "96fd8636-0fdb-429d-a1e7-fc96c02c4af6", Name: "web-0",
			Hostname: "web-0", Owner: "u1", Project: "p1", Host: "compute1", State: "active", Kind: eventbus.KindRunning,
			NICs:       []eventbus.NIC{{ID: "0", Network: "net", IP: "192.0.2.160", IP6: "2001:db8::29e", MAC: "fa:16:3e:f3:86:d9"}},
			Attributes: map[string]string{"role": "db"}, Times: eventbus.Times{Created: &created, Changed: &later},
			Version: eventbus.Version{Changed: later.UnixNano()}}
	}
	bridge := func() eventbus.VM {
		vm := listed()
		vm.NICs = []eventbus.NIC{{ID: "2ae1f4bd-947b-4119-a2b9-962353540b20", Name: "tap2ae1f4bd-94", Network: "net",
			IP: "192.0.2.160", IP6: "2001:db8::29e", MAC: "FA:16:3E:F3:86:D9"},
			{ID: "2ae1f4bd-947b-4119-a2b9-962353540b20-1", Network: "net", IP: "192.0.2.161", Alias: true, Parent: "2ae1f4bd-947b-4119-a2b9-962353540b20"}}
		vm.Flavor, vm.Image, vm.Labels = "tiny", "c38330f3", []string{}
		vm.Times = eventbus.Times{Created: &created, Changed: &bridged, Observed: &bridged}
		vm.Version = eventbus.Version{Changed: bridged.UnixNano(), Observed: bridged.UnixNano() + 290488000, Seen: 1}
		return vm
	}
	for _, tc := range []struct {
		name   string
		change func(*eventbus.VM)
		same   bool
	}{
		{"as the bridge maps it", func(*eventbus.VM) {}, true},
		{"other ip", func(vm *eventbus.VM) { vm.NICs[0].IP = "192.0.2.9" }, false},
		{"other ip6", func(vm *eventbus.VM) { vm.NICs[0].IP6 = "2001:db8::9" }, false},
		{"no nic", func(vm *eventbus.VM) { vm.NICs = []eventbus.NIC{} }, false},
		{"second port", func(vm *eventbus.VM) {
			vm.NICs = append(vm.NICs, eventbus.NIC{ID: "p2", Network: "net", IP: "192.0.2.7", MAC: "fa:16:3e:00:00:01"})
		}, false},
		{"stopped", func(vm *eventbus.VM) { vm.State, vm.Kind = "stopped", eventbus.KindStopped }, false},
		{"task under way", func(vm *eventbus.VM) { vm.LCMState, vm.Kind = "powering-off", eventbus.KindStopping }, false},
		{"other host", func(vm *eventbus.VM) { vm.Host = "compute2" }, false},
		{"renamed", func(vm *eventbus.VM) { vm.Name = "web-1" }, false},
		{"other metadata", func(vm *eventbus.VM) { vm.Attributes = map[string]string{"role": "web"} }, false},
		{"no metadata", func(vm *eventbus.VM) { vm.Attributes = map[string]string{} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bridge()
			tc.change(&b)
			x, y := nova.Comparable(listed()), nova.Comparable(b)
			if got := x.Digest() == y.Digest(); got != tc.same {
				t.Fatalf("same %v, want %v:\n%+v\n%+v", got, tc.same, x, y)
			}
		})
	}
}
