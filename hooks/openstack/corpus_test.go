package openstack

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmglue/vmglue/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/openstack")

// goldenDir holds one golden result per sample.
const goldenDir = "../../testdata/openstack/golden"

// testCloud is the cloud name every test uses.
const testCloud = "os-test"

// corpusDirs are the folders of $VMGLUE_CORPUS/openstack that are read.
// nova_versioned/ is left out: its samples are split with "$ref"s, and
// nova_versioned_resolved/ holds the same samples resolved.
var corpusDirs = []string{".", "nova_versioned_resolved", "nova_legacy", "neutron_legacy"}

// corpusFiles returns the corpus samples (testenv.Corpus skips loudly, or
// fails in CI, when VMGLUE_CORPUS is not set).
func corpusFiles(t testing.TB) []string {
	t.Helper()
	root := testenv.Corpus(t, "OpenStack")
	var files []string
	for _, d := range corpusDirs {
		m, err := filepath.Glob(filepath.Join(root, "openstack", d, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 30 {
		t.Fatalf("VMGLUE_CORPUS=%s: %d OpenStack samples, want the 30 or more of the shared corpus", root, len(files))
	}
	return files
}

// result is what a golden file holds: the event, or why there is none.
type result struct {
	Format  string          `json:"format,omitempty"`
	Event   json.RawMessage `json:"event,omitempty"`
	Ignored string          `json:"ignored,omitempty"`
	Error   string          `json:"error,omitempty"`
}

func decodeSample(t *testing.T, body []byte) result {
	t.Helper()
	n, err := Decode(body)
	if err != nil {
		return result{Error: err.Error()}
	}
	ev, err := Options{Cloud: testCloud}.Event(n)
	switch {
	case errors.Is(err, ErrIgnored):
		return result{Format: n.Format, Ignored: err.Error()}
	case err != nil:
		return result{Format: n.Format, Error: err.Error()}
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return result{Format: n.Format, Event: b}
}

// TestCorpusGolden maps every sample of the shared corpus (versioned and
// legacy Nova notifications, Neutron ones that must be ignored) and
// compares the result with testdata/openstack/corpus/<dir>__<name>.golden.json.
// `go test ./hooks/openstack -run Golden -update` rewrites them.
func TestCorpusGolden(t *testing.T) {
	for _, file := range corpusFiles(t) {
		golden(t, filepath.Base(filepath.Dir(file))+"__"+strings.TrimSuffix(filepath.Base(file), ".json"), file)
	}
}

// capturedDir holds AMQP bodies captured from scripts/openstack-stack.sh's
// Nova (Zed 26.2.2, notification_format both), the context token replaced.
const capturedDir = "../../testdata/openstack/captured"

// TestCapturedGolden does the same for the notifications captured from the
// test stack's real Nova: one server booted, powered off and on, an
// interface attached and detached, deleted.
func TestCapturedGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(capturedDir, "*", "*.json"))
	if err != nil || len(files) < 20 {
		t.Fatalf("%d captured samples in %s (%v), want the 30", len(files), capturedDir, err)
	}
	for _, file := range files {
		golden(t, "captured__"+filepath.Base(filepath.Dir(file))+"__"+strings.TrimSuffix(filepath.Base(file), ".json"), file)
	}
}

// TestCapturedKinds: the lifecycle of the captured server, in both formats.
func TestCapturedKinds(t *testing.T) {
	tests := []struct{ file, kind string }{
		{"versioned/instance.create.end", "running"}, {"legacy/compute.instance.create.end", "running"},
		{"versioned/instance.power_off.start", "stopping"}, {"legacy/compute.instance.power_off.start", "stopping"},
		{"versioned/instance.power_off.end", "stopped"}, {"legacy/compute.instance.power_off.end", "stopped"},
		{"versioned/instance.power_on.end", "running"}, {"legacy/compute.instance.power_on.end", "running"},
		{"versioned/instance.interface_attach.end", "changing"}, {"versioned/instance.interface_detach.end", "changing"},
		{"versioned/instance.delete.start", "stopping"}, {"legacy/compute.instance.delete.start", "stopping"},
		{"versioned/instance.shutdown.end", "stopped"}, {"legacy/compute.instance.shutdown.end", "stopped"},
		{"versioned/instance.delete.end", "deleted"}, {"legacy/compute.instance.delete.end", "deleted"},
	}
	ips := map[string]string{} // format -> the create.end addresses
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join(capturedDir, tt.file+".json"))
			if err != nil {
				t.Fatal(err)
			}
			n, err := Decode(body)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := Options{Cloud: testCloud}.Event(n)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Data.Kind != tt.kind || ev.Data.Name != "captured-web1" || ev.Data.Attributes["LB_BACKENDS"] != "web:8080" {
				t.Fatalf("kind %q name %q attributes %v, want %s", ev.Data.Kind, ev.Data.Name, ev.Data.Attributes, tt.kind)
			}
			if strings.HasSuffix(tt.file, "create.end") {
				nic := ev.Data.NICs[0]
				if len(ev.Data.NICs) != 1 || nic.IP == "" || nic.IP6 == "" {
					t.Fatalf("create.end NICs %+v: want one with an IPv4 and an IPv6", ev.Data.NICs)
				}
				ips[n.Format] = nic.IP + " " + nic.IP6
			}
			if strings.HasSuffix(tt.file, "interface_attach.end") && len(ev.Data.NICs) != 2 {
				t.Fatalf("interface_attach.end NICs %+v: want the new port too", ev.Data.NICs)
			}
		})
	}
	if ips[FormatVersioned] == "" || ips[FormatVersioned] != ips[FormatLegacy] {
		t.Errorf("create.end addresses: versioned %q, legacy %q", ips[FormatVersioned], ips[FormatLegacy])
	}
}

// golden maps the sample in file and compares the result with
// goldenDir/<name>.golden.json.
func golden(t *testing.T, name, file string) {
	t.Run(name, func(t *testing.T) {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		got := decodeSample(t, body)
		if bytes.Contains(got.Event, []byte("_context")) || bytes.Contains(got.Event, []byte("auth_token")) || bytes.Contains(got.Event, []byte("gAAAAA")) {
			t.Fatalf("event carries the message context: %s", got.Event)
		}
		testenv.Golden(t, filepath.Join(goldenDir, name+".golden.json"), got, *update)
	})
}
