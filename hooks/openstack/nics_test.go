package openstack

import (
	"encoding/json"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
)

func TestNICs(t *testing.T) {
	const mac1, mac2, mac3 = "fa:16:3e:00:00:01", "fa:16:3e:00:00:02", "fa:16:3e:00:00:03"
	for _, tc := range []struct {
		name  string
		addrs []Address
		want  []eventbus.NIC
	}{
		{"none", nil, []eventbus.NIC{}},
		{
			"the MAC in lower case is the id, IPv4 and IPv6 on one NIC, a further address an alias",
			[]Address{{Network: "n", MAC: "FA:16:3E:00:00:01", IP: "192.0.2.1", Device: "tap1"},
				{Network: "n", MAC: mac1, IP: "2001:db8::1"}, {Network: "n", MAC: mac1, IP: "192.0.2.2"}},
			[]eventbus.NIC{{ID: mac1, Name: "tap1", Network: "n", IP: "192.0.2.1", IP6: "2001:db8::1", MAC: mac1},
				{ID: mac1 + "-1", Network: "n", IP: "192.0.2.2", MAC: mac1, Alias: true, Parent: mac1}},
		},
		{
			"networks by name, the sources' order within one",
			[]Address{{Network: "z", MAC: mac3, IP: "192.0.2.1"}, {Network: "a", MAC: mac2, IP: "192.0.2.2"},
				{Network: "a", MAC: mac1, IP: "192.0.2.3"}},
			[]eventbus.NIC{{ID: mac2, Network: "a", IP: "192.0.2.2", MAC: mac2}, {ID: mac1, Network: "a", IP: "192.0.2.3", MAC: mac1},
				{ID: mac3, Network: "z", IP: "192.0.2.1", MAC: mac3}},
		},
		{
			"no MAC (a legacy notification of Nova before Liberty): one NIC per network",
			[]Address{{Network: "n", IP: "192.0.2.1"}, {Network: "n", IP: "192.0.2.2"}},
			[]eventbus.NIC{{ID: "net-n", Network: "n", IP: "192.0.2.1"},
				{ID: "net-n-1", Network: "n", IP: "192.0.2.2", Alias: true, Parent: "net-n"}},
		},
		{
			"not an address, or with a zone: left out",
			[]Address{{Network: "n", MAC: mac1, IP: "web1"}, {Network: "n", MAC: mac2, IP: "fe80::1%eth0"}},
			[]eventbus.NIC{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := mustJSON(t, NICs(tc.addrs)), mustJSON(t, tc.want); got != want {
				t.Errorf("NICs\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestAPINICs: Nova's API's addresses map as the notifications do, but
// floating addresses, whichever order the networks come in.
func TestAPINICs(t *testing.T) {
	var addrs map[string][]APIAddress
	body := `{"b": [{"addr": "192.0.2.9", "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "FA:16:3E:00:00:09"},
		{"addr": "203.0.113.9", "version": 4, "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:09"}],
		"a": [{"addr": "2001:db8::8", "version": 6, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:08"}]}`
	if err := json.Unmarshal([]byte(body), &addrs); err != nil {
		t.Fatal(err)
	}
	want := []eventbus.NIC{{ID: "fa:16:3e:00:00:08", Network: "a", IP6: "2001:db8::8", MAC: "fa:16:3e:00:00:08"},
		{ID: "fa:16:3e:00:00:09", Network: "b", IP: "192.0.2.9", MAC: "fa:16:3e:00:00:09"}}
	for range 5 { // map order varies
		if got := mustJSON(t, APINICs(addrs)); got != mustJSON(t, want) {
			t.Fatalf("APINICs %s, want %s", got, mustJSON(t, want))
		}
	}
}
