package opennebula

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/opennebula")

// testdataDir holds the VM documents written for these tests and their
// golden events.
const testdataDir = "../../testdata/opennebula"

// testCloud is the cloud name every test uses.
const testCloud = "one-test"

// testdataFiles returns the XML documents in testdataDir.
func testdataFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testdataDir, "*.xml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no XML documents in %s (err %v)", testdataDir, err)
	}
	return files
}

// TestGolden maps every document in testdata/opennebula to its event (a
// <VM>) or list of events (a <VM_POOL>) and compares it with
// <name>.golden.json. Run `go test ./hooks/opennebula -update` to rewrite
// the golden files, then review the diff.
func TestGolden(t *testing.T) {
	for _, file := range testdataFiles(t) {
		name := strings.TrimSuffix(filepath.Base(file), ".xml")
		t.Run(name, func(t *testing.T) {
			doc, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var got any
			if bytes.Contains(doc[:min(len(doc), 64)], []byte("<VM_POOL")) {
				got = poolEvents(t, doc)
			} else {
				got = vmEvent(t, doc)
			}
			testenv.Golden(t, filepath.Join(testdataDir, name+".golden.json"), got, *update)
		})
	}
}

// vmEvent maps a <VM> document both through ParseVM and through the hook
// input path, and checks that both agree.
func vmEvent(t *testing.T, doc []byte) eventbus.Event {
	t.Helper()
	vm, err := ParseVM(doc, testCloud)
	if err != nil {
		t.Fatalf("ParseVM: %v", err)
	}
	ev, err := eventbus.NewEvent(vm)
	if err != nil {
		t.Fatalf("NewEvent: %v", err)
	}
	if err := ev.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	hev, err := ParseHookInput(hookInput(doc, "running"), nil, testCloud, nil)
	if err != nil {
		t.Fatalf("ParseHookInput: %v", err)
	}
	if hev.ID != ev.ID {
		t.Errorf("ParseHookInput id %s, ParseVM id %s", hev.ID, ev.ID)
	}
	return ev
}

func poolEvents(t *testing.T, doc []byte) []eventbus.Event {
	t.Helper()
	vms, err := ParsePool(doc, testCloud)
	if err != nil {
		t.Fatalf("ParsePool: %v", err)
	}
	evs := []eventbus.Event{}
	for _, vm := range vms {
		ev, err := eventbus.NewEvent(vm)
		if err != nil {
			t.Fatalf("NewEvent of vm %s: %v", vm.ID, err)
		}
		evs = append(evs, ev)
	}
	return evs
}
