package opennebula

import (
	"encoding/base64"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
)

// A malformed byte anywhere but in a field the event needs is replaced by
// U+FFFD and said; the event is built, a DONE included.
func TestParseHookInputRepairs(t *testing.T) {
	const head = "<VM><ID>5</ID><STATE>6</STATE><LCM_STATE>0</LCM_STATE>"
	tests := []struct {
		name     string
		body     string
		wantNote string
		check    func(vm eventbus.VM) bool
	}{
		{"clean", "<NAME>web</NAME>", "", func(vm eventbus.VM) bool { return vm.Name == "web" }},
		{"name", "<NAME>w\xffb</NAME>", "replaced 1 malformed byte in NAME", func(vm eventbus.VM) bool { return vm.Name == "w\uFFFDb" }},
		{"user attribute", "<USER_TEMPLATE><NOTE>a\xc3\x28b</NOTE><ROLE>web</ROLE></USER_TEMPLATE>", "replaced 1 malformed byte in USER_TEMPLATE/NOTE",
			func(vm eventbus.VM) bool {
				return vm.Attributes["NOTE"] == "a\uFFFD(b" && vm.Attributes["ROLE"] == "web"
			}},
		{"control character", "<USER_TEMPLATE><NOTE>a\x01\x02</NOTE></USER_TEMPLATE>", "replaced 2 malformed bytes in USER_TEMPLATE/NOTE",
			func(vm eventbus.VM) bool { return vm.Attributes["NOTE"] == "a\uFFFD\uFFFD" }},
		{"skipped section", "<MONITORING><X>\xfe\xff</X></MONITORING><NAME>m</NAME>", "replaced 2 malformed bytes in MONITORING/X",
			func(vm eventbus.VM) bool { return vm.Name == "m" }},
		{"two places", "<NAME>\xff</NAME><USER_TEMPLATE><A>\xff</A></USER_TEMPLATE>", "replaced 2 malformed bytes in NAME, USER_TEMPLATE/A", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(base64.StdEncoding.EncodeToString([]byte(head+tt.body+"</VM>")) + " done")
			ev, fix, err := ParseHookInputRepairs(in, nil, testCloud, nil)
			if err != nil {
				t.Fatalf("ParseHookInputRepairs: %v", err)
			}
			if got := fix.String(); got != tt.wantNote {
				t.Errorf("note %q, want %q", got, tt.wantNote)
			}
			if ev.Data.Kind != eventbus.KindDeleted || ev.Data.ID != "5" {
				t.Errorf("event %s %s", ev.Data.ID, ev.Data.Kind)
			}
			if tt.check != nil && !tt.check(ev.Data) {
				t.Errorf("vm %+v", ev.Data)
			}
		})
	}
}
