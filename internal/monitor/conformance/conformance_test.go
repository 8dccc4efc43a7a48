// Package conformance runs the worker conformance suite (workertest) on
// both outputs of the monitor Target: the Icinga2 output against a real
// Icinga2 (checker off) with the least-privilege API user, and the file_sd
// output against its real files. It lives apart from package monitor so
// that monitor's own tests do not depend on the runtime's packages.
package conformance

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/monitor"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

// vars the fixture's config maps, and the marker vars vmglue always sets.
var vars = []string{"vmglue_owner", "vmglue_vm", "os", "web"}

func vm(t *testing.T, id string) eventbus.VM {
	return eventbus.VM{Cloud: "one", CloudType: "opennebula", ID: id, Name: "conf-" + id, Owner: "alice",
		Kind: eventbus.KindRunning, State: "ACTIVE", LCMState: "RUNNING", Labels: []string{"web"},
		Attributes: map[string]string{"OS": "debian"},
		NICs:       []eventbus.NIC{{ID: "0", Network: "public", IP: "127.0.0.42", IP6Global: "fd00::42"}}}
}

func TestConformanceIcinga(t *testing.T) {
	ic := testenv.StartIcinga(t)
	workertest.Run(t, workertest.Fixture{
		New: func(t *testing.T) worker.Target {
			tg, err := monitor.New(monitor.Config{OwnerID: "conformance", Icinga: &monitor.IcingaConfig{
				URL: ic.URL, User: ic.User, PasswordFile: ic.PasswordFile, CAFile: ic.CAFile,
				Templates: []string{"generic-host"}, LabelTemplates: map[string]string{"web": "web-server"},
				Vars: map[string]string{"os": "attribute:OS", "web": "label:web"},
			}}, worker.Deps{Log: zerolog.Nop()})
			if err != nil {
				t.Fatalf("new monitor target: %v", err)
			}
			return tg
		},
		VM: vm,
		// A new address and a template more: updated in place / re-created.
		Change: func(vm *eventbus.VM) {
			vm.NICs[0].IP = "127.0.0.43"
			vm.Labels = nil
		},
		Observe: func(t *testing.T, vm *eventbus.VM) worker.Objects {
			return observeIcinga(t, ic, vm.Name)
		},
		RemoveByHand: func(t *testing.T, vm *eventbus.VM) {
			if code, b := ic.Do("DELETE", "/v1/objects/hosts/"+vm.Name+"?cascade=1", nil); code != 200 {
				t.Fatalf("delete host by hand: %d %s", code, b)
			}
		},
		PlantForeign: func(t *testing.T, vm *eventbus.VM) worker.Objects {
			code, b := ic.Do("PUT", "/v1/objects/hosts/"+vm.Name, map[string]any{"templates": []string{"generic-host"},
				"attrs": map[string]any{"address": "127.0.0.9", "display_name": "operator's host"}})
			if code != 200 {
				t.Fatalf("plant foreign host: %d %s", code, b)
			}
			return observeIcinga(t, ic, vm.Name)
		},
	})
}

// observeIcinga reads the host called name and vmglue's downtime of it, as
// Desired writes them: host/<name> with the templates and the attributes
// vmglue sets, downtime/<name> with the comment.
func observeIcinga(t *testing.T, ic *testenv.Icinga, name string) worker.Objects {
	t.Helper()
	got := worker.Objects{}
	h := ic.Host(name)
	if h == nil {
		return got
	}
	tpl := h.Templates
	if len(tpl) > 0 && tpl[0] == name {
		tpl = tpl[1:]
	}
	attrs := map[string]string{}
	for k, v := range map[string]string{"address": h.Address, "address6": h.Address6, "display_name": h.DisplayName} {
		if v != "" {
			attrs[k] = v
		}
	}
	for _, v := range vars {
		if x, ok := h.Vars[v]; ok {
			attrs["vars."+v] = fmt.Sprint(x)
		}
	}
	b, _ := json.Marshal(struct {
		Templates []string          `json:"templates"`
		Attrs     map[string]string `json:"attrs"`
	}{tpl, attrs})
	got["host/"+name] = string(b)
	for _, d := range ic.Downtimes(name) {
		if d.Author == "vmglue" && d.ServiceName == "" {
			got["downtime/"+name] = d.Comment
		}
	}
	return got
}

func TestConformanceFileSD(t *testing.T) {
	var dir string
	workertest.Run(t, workertest.Fixture{
		New: func(t *testing.T) worker.Target {
			dir = t.TempDir()
			tg, err := monitor.New(monitor.Config{FileSD: &monitor.FileSDConfig{Dir: dir, Jobs: []monitor.Job{
				{Name: "node", Port: 9100, Addresses: []string{"ip", "ip6_global"}, Labels: map[string]string{"os": "attribute:OS"}},
				{Name: "web", Port: 8080, Labels: map[string]string{"web": "label:web"}},
			}}}, worker.Deps{Log: zerolog.Nop()})
			if err != nil {
				t.Fatalf("new monitor target: %v", err)
			}
			return tg
		},
		VM:     vm,
		Change: func(vm *eventbus.VM) { vm.NICs[0].IP = "127.0.0.43"; vm.Attributes["OS"] = "trixie" },
		Observe: func(t *testing.T, vm *eventbus.VM) worker.Objects {
			return observeFileSD(t, dir, vm)
		},
		RemoveByHand: func(t *testing.T, _ *eventbus.VM) {
			files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
			for _, f := range files {
				if err := os.WriteFile(f, []byte("[]\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		},
		NoForeign: "the file_sd files are vmglue's own: every entry in them is written by the worker, " +
			"so no entry of anyone else can be in the way",
	})
}

// observeFileSD reads every job file of dir and returns the VM's entries
// (by their cloud and vm_id labels), keyed file_sd/<job>.
func observeFileSD(t *testing.T, dir string, vm *eventbus.VM) worker.Objects {
	t.Helper()
	got := worker.Objects{}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var entries []monitor.Entry
		if err := json.Unmarshal(b, &entries); err != nil {
			t.Fatalf("%s is not a file_sd file: %v\n%s", f, err, b)
		}
		for _, e := range entries {
			if e.Labels["cloud"] == vm.Cloud && e.Labels["vm_id"] == vm.ID {
				v, _ := json.Marshal(e)
				got["file_sd/"+filepath.Base(f[:len(f)-len(".json")])] = string(v)
			}
		}
	}
	return got
}
