package testenv

import (
	"os"
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
