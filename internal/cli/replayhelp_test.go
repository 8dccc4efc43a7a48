package cli_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/vmglue/vmglue/internal/catalog"
	"github.com/vmglue/vmglue/internal/cli"
)

// `vmglue replay --help` names every worker of the catalog for --worker.
func TestReplayHelpNamesWorkers(t *testing.T) {
	var out, errb bytes.Buffer
	if code := cli.Execute(context.Background(), []string{"replay", "--help"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want := "only this worker (" + strings.Join(catalog.Names(), ", ") + ")"
	if len(catalog.Names()) == 0 || !strings.Contains(out.String(), want) {
		t.Fatalf("replay --help lacks %q:\n%s", want, out.String())
	}
}
