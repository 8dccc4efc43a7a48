package apitest

import (
	"os"
	"path/filepath"
	"testing"
)

// CorpusDir is the folder of the shared corpus's real OpenNebula documents,
// $VMGLUE_CORPUS/opennebula. Without VMGLUE_CORPUS the test fails in CI and
// is skipped, loudly, elsewhere (the convention of the corpus tests).
func CorpusDir(t testing.TB) string {
	t.Helper()
	root := os.Getenv("VMGLUE_CORPUS")
	if root == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("VMGLUE_CORPUS is not set in CI: point it at the shared corpus folder")
		}
		t.Skip("!!! VMGLUE_CORPUS is not set: this corpus test did NOT run (set VMGLUE_CORPUS=/work/shared/corpus) !!!")
	}
	return filepath.Join(root, "opennebula")
}

// CorpusDoc reads one document of CorpusDir.
func CorpusDoc(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(CorpusDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
