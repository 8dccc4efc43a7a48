package cli_test

import (
	"bytes"
	"context"
	"slices"
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

// `vmglue replay --help` says a replayed event is verified, and by which
// workers: those of the catalog whose target is a worker.Verifier.
func TestReplayHelpNamesVerifyingWorkers(t *testing.T) {
	var out, errb bytes.Buffer
	if code := cli.Execute(context.Background(), []string{"replay", "--help"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	v := catalog.Verifying()
	if !slices.Equal(v, []string{"dns", "lb", "puppet", "monitor"}) {
		t.Errorf("verifying workers %v, want dns, lb, puppet, monitor", v)
	}
	want := "converged with verification: a worker that can read its\ntarget back (" + strings.Join(v, ", ") + ")"
	if !strings.Contains(out.String(), want) {
		t.Fatalf("replay --help lacks %q:\n%s", want, out.String())
	}
}
