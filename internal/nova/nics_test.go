package nova

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/openstack"
	"github.com/vmglue/vmglue/internal/testenv"
)

// legacyPort is a legacy fixed_ips entry as Nova since Liberty sends it
// (with vif_mac, which the shared corpus's 2012 samples lack).
type legacyPort struct {
	Address string `json:"address"`
	Version int    `json:"version"`
	Label   string `json:"label"`
	Type    string `json:"type"`
	MAC     string `json:"vif_mac"`
}

// TestNICsAcrossSources: one server seen by a versioned notification, a
// legacy one and Nova's API (the bridge's two formats, its lookup and the
// sweep) is the same NICs, ids included: else every source's snapshot of
// an unchanged VM is new content to the workers (another Digest and
// Observation) and the sweep's replaces the bridge's NIC ids.
func TestNICsAcrossSources(t *testing.T) {
	root := filepath.Join(testenv.Corpus(t, "OpenStack"), "openstack")
	first := legacyPort{Address: "192.168.1.3", Version: 4, Label: "private", Type: "fixed", MAC: "fa:16:3e:4c:2c:30"}
	second := legacyPort{Address: "192.168.1.30", Version: 4, Label: "private", Type: "fixed", MAC: "00:0c:29:0d:11:74"}
	for _, tc := range []struct {
		name    string
		samples []string       // corpus files of notifications about the server
		legacy  [][]legacyPort // the legacy samples' fixed_ips, as a newer Nova sends them
		api     string         // the server's "addresses" in Nova's API
	}{
		{
			name:    "versioned create.end and legacy create.end",
			samples: []string{"nova_versioned_resolved/instance-create-end.json", "nova_legacy/compute.instance.create.end.json"},
			legacy:  [][]legacyPort{nil, {first}},
			api: `{"private": [{"addr": "192.168.1.3", "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:4c:2c:30"},
				{"addr": "203.0.113.7", "version": 4, "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:4c:2c:30"}]}`,
		},
		{
			name:    "two ports on one network: versioned interface_attach.end and legacy create.end",
			samples: []string{"nova_versioned_resolved/instance-interface_attach-end.json", "nova_legacy/compute.instance.create.end-2.json"},
			legacy:  [][]legacyPort{nil, {first, second}},
			api: `{"private": [{"addr": "192.168.1.3", "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:4c:2c:30"},
				{"addr": "192.168.1.30", "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "00:0c:29:0d:11:74"}]}`,
		},
		{
			name:    "the versioned wire capture",
			samples: []string{"SYNTHETIC_wire_versioned_instance-create-end.json"},
			api:     `{"private": [{"addr": "192.168.1.3", "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "FA:16:3E:4C:2C:30"}]}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s server
			s.ID = "178b0921-8f85-4257-88b6-2e743b5a975c"
			if err := json.Unmarshal([]byte(tc.api), &s.Addresses); err != nil {
				t.Fatal(err)
			}
			listed, err := s.vm(&Options{Cloud: "os1"})
			if err != nil {
				t.Fatal(err)
			}
			want := ids(listed.NICs)
			for i, f := range tc.samples {
				body, err := os.ReadFile(filepath.Join(root, f))
				if err != nil {
					t.Fatal(err)
				}
				if i < len(tc.legacy) && tc.legacy[i] != nil {
					body = withFixedIPs(t, body, tc.legacy[i])
				}
				n, err := openstack.Decode(body)
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				vm, err := openstack.Options{Cloud: "os1"}.Map(n)
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				if got := ids(vm.NICs); got != want {
					t.Errorf("%s (%s): NICs\n%s\nthe API's\n%s", f, n.Format, got, want)
				}
			}
		})
	}
}

// ids is the NICs but their device names (the API has none) as JSON.
func ids(nics []eventbus.NIC) string {
	out := make([]eventbus.NIC, len(nics))
	for i, n := range nics {
		n.Name = ""
		out[i] = n
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// withFixedIPs replaces the fixed_ips of a legacy notification.
func withFixedIPs(t *testing.T, body []byte, ports []legacyPort) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	m["payload"].(map[string]any)["fixed_ips"] = ports
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
