package testenv

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// CorpusEnv names the shared sample corpus folder (the one with
// opennebula/ and openstack/ in it); make test sets it.
const CorpusEnv = "VMGLUE_CORPUS"

// Corpus returns the corpus folder. Without VMGLUE_CORPUS it skips the test
// loudly, naming what did not run, and fails it in CI.
func Corpus(t testing.TB, what string) string {
	t.Helper()
	root := os.Getenv(CorpusEnv)
	if root == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("VMGLUE_CORPUS is not set in CI: point it at the shared corpus folder")
		}
		t.Skipf("!!! VMGLUE_CORPUS is not set: the %s corpus test did NOT run (set VMGLUE_CORPUS=/work/shared/corpus) !!!", what)
	}
	return root
}

// Golden compares v, as indented JSON, with the golden file path, or
// rewrites the file when update is set (a test's -update flag; review the
// diff then).
func Golden(t testing.TB, path string, v any, update bool) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("result differs from %s (run with -update and review the diff):\n%s", path, buf.Bytes())
	}
}
