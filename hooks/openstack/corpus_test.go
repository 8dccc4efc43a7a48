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

// goldenDir holds one golden result per corpus sample.
const goldenDir = "../../testdata/openstack/corpus"

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
// `go test ./hooks/openstack -run TestCorpusGolden -update` rewrites them.
func TestCorpusGolden(t *testing.T) {
	for _, file := range corpusFiles(t) {
		name := filepath.Base(filepath.Dir(file)) + "__" + strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got := decodeSample(t, body)
			if bytes.Contains(got.Event, []byte("_context")) || bytes.Contains(got.Event, []byte("auth_token")) {
				t.Fatalf("event carries the message context: %s", got.Event)
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(got); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join(goldenDir, name+".golden.json")
			if *update {
				if err := os.MkdirAll(goldenDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("%s differs from the golden file:\n got: %s\nwant: %s", name, buf.Bytes(), want)
			}
		})
	}
}
