package opennebula

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
)

// corpusVM is what is known of one VM of a corpus document (read from the
// file itself and from /work/shared/facts/opennebula.md section 7).
type corpusVM struct {
	id, name, state, lcm, kind string
	host, hostname             string
	seq                        int64
	nics                       int
	firstIP, firstMAC          string
	labels                     []string
	deleted                    bool
}

// corpusWant lists, per file of $VMGLUE_CORPUS/opennebula, its VMs in order.
var corpusWant = map[string][]corpusVM{
	"vm-undeployed-1nic-labels.xml": {{
		id: "595", name: "master0.s88.lab", state: "UNDEPLOYED", lcm: "LCM_INIT", kind: eventbus.KindStopped,
		host: "t110.lan", hostname: "master0.s88.lab", seq: 12, nics: 1,
		firstIP: "192.168.2.91", firstMAC: "02:00:c0:a8:02:5b", labels: []string{"OpenShift"},
	}},
	"vm-done-vrouter-2nics.xml": {{
		id: "454", name: "vr-vrtest-0", state: "DONE", lcm: "LCM_INIT", kind: eventbus.KindDeleted,
		host: "node02", seq: 0, nics: 2, firstIP: "192.168.2.77", firstMAC: "02:00:c0:a8:02:4d", deleted: true,
	}},
	"vm-poweroff-1nic-snapshot.xml": {{
		id: "621", name: "kolab", state: "POWEROFF", lcm: "LCM_INIT", kind: eventbus.KindStopped,
		host: "t110.lan", hostname: "kolab", seq: 5, nics: 1, firstIP: "192.168.2.108", firstMAC: "02:00:c0:a8:02:6c",
	}},
	"vmpool-2vms-active-unknown-nics.xml": {{
		id: "1", name: "testvmæ-1", state: "ACTIVE", lcm: "UNKNOWN", kind: eventbus.KindUnknown,
		host: "node2", seq: 0, nics: 2, firstIP: "192.168.10.101", firstMAC: "02:00:c0:a8:0a:65",
	}, {
		id: "2", name: "testvm2", state: "ACTIVE", lcm: "UNKNOWN", kind: eventbus.KindUnknown,
		host: "node1", seq: 0, nics: 1, firstIP: "192.168.10.100", firstMAC: "02:00:c0:a8:0a:64",
	}},
	"vm-active-backup-1nic-6.10-docs.xml": {{
		id: "800", name: "alpine-800", state: "ACTIVE", lcm: "BACKUP", kind: eventbus.KindChanging,
		host: "ubuntu2204-kvm-ceph-quincy-6-99-0c08-2.test", seq: 1, nics: 1,
		firstIP: "192.168.150.100", firstMAC: "02:00:c0:a8:96:64",
	}},
	"vm-pending-no-nic-hook-template-5.12-docs.xml": {{
		id: "0", name: "test", state: "PENDING", lcm: "LCM_INIT", kind: eventbus.KindCreated, seq: -1,
	}},
}

// TestCorpus parses every XML document of the shared real-world corpus.
// VMGLUE_CORPUS names the corpus folder (the one with opennebula/ in it).
func TestCorpus(t *testing.T) {
	root := testenv.Corpus(t, "OpenNebula")
	dir := filepath.Join(root, "opennebula")
	files, err := filepath.Glob(filepath.Join(dir, "*.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("VMGLUE_CORPUS=%s: no VM documents in %s", root, dir)
	}
	for _, file := range files {
		base := filepath.Base(file)
		t.Run(base, func(t *testing.T) {
			doc, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var vms []eventbus.VM
			if bytes.Contains(doc[:min(len(doc), 128)], []byte("<VM_POOL")) {
				vms, err = ParsePool(doc, testCloud)
			} else {
				var vm eventbus.VM
				vm, err = ParseVM(doc, testCloud)
				vms = []eventbus.VM{vm}
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			for _, vm := range vms {
				checkCorpusVM(t, vm)
			}
			want, ok := corpusWant[base]
			if !ok {
				t.Fatalf("no expectations for %s: add it to corpusWant", base)
			}
			if len(vms) != len(want) {
				t.Fatalf("%d VMs, want %d", len(vms), len(want))
			}
			for i, w := range want {
				compareCorpusVM(t, vms[i], w)
			}
		})
	}
	for name := range corpusWant {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("corpus file %s is gone: %v", name, err)
		}
	}
}

// checkCorpusVM checks what holds for every VM: a valid event, and every
// NIC with a MAC or an IP.
func checkCorpusVM(t *testing.T, vm eventbus.VM) {
	t.Helper()
	ev, err := eventbus.NewEvent(vm)
	if err != nil {
		t.Fatalf("vm %s: NewEvent: %v", vm.ID, err)
	}
	if err := ev.Validate(); err != nil {
		t.Errorf("vm %s: Validate: %v", vm.ID, err)
	}
	for _, nic := range vm.NICs {
		if nic.MAC == "" && nic.IP == "" && nic.IP6 == "" && nic.IP6Global == "" {
			t.Errorf("vm %s: NIC %s has neither MAC nor IP", vm.ID, nic.ID)
		}
	}
	if vm.Times.Created == nil {
		t.Errorf("vm %s: no creation time", vm.ID)
	}
}

func compareCorpusVM(t *testing.T, vm eventbus.VM, w corpusVM) {
	t.Helper()
	got := corpusVM{
		id: vm.ID, name: vm.Name, state: vm.State, lcm: vm.LCMState, kind: vm.Kind,
		host: vm.Host, hostname: vm.Hostname, seq: vm.Version.Seq, nics: len(vm.NICs),
		labels: vm.Labels, deleted: vm.Deleted(),
	}
	if len(vm.NICs) > 0 {
		got.firstIP, got.firstMAC = vm.NICs[0].IP, vm.NICs[0].MAC
	}
	if got.id != w.id || got.name != w.name || got.state != w.state || got.lcm != w.lcm ||
		got.kind != w.kind || got.host != w.host || got.hostname != w.hostname || got.seq != w.seq ||
		got.nics != w.nics || got.firstIP != w.firstIP || got.firstMAC != w.firstMAC ||
		!slices.Equal(got.labels, w.labels) || got.deleted != w.deleted {
		t.Errorf("vm %s:\n got %+v\nwant %+v", w.id, got, w)
	}
	if w.deleted && vm.Times.Ended == nil {
		t.Errorf("vm %s: DONE without an end time", w.id)
	}
}
