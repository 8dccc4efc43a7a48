package cli_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/ops/opstest"
)

func TestReplay(t *testing.T) {
	e := newOpsEnv(t, "dns")
	for _, id := range []string{"1", "2", "3"} {
		e.Publish(opstest.VM(id, eventbus.KindRunning))
	}
	e.Publish(opstest.VM("3", eventbus.KindDeleted))
	e.Idle(t)

	tests := []struct {
		name      string
		args      []string
		code      int
		published int
		out, not  []string
	}{
		{"no filter is refused", []string{"replay"}, 1, 0, nil, nil},
		{"--worker with a bad name", []string{"replay", "--all", "--worker", "d.n.s"}, 1, 0, nil, nil},
		{"--since with --start-sequence", []string{"replay", "--since", "1h", "--start-sequence", "2"}, 1, 0, nil, nil},
		{"bad type", []string{"replay", "--type", "nope"}, 1, 0, nil, nil},
		{"dry run all", []string{"replay", "--all", "--dry-run"}, 0, 0,
			[]string{"would replay #1 ", "one/1 running", "#4 ", "one/3 deleted", "4 event(s) would be replayed (dry run"}, nil},
		{"dry run by vm and type", []string{"replay", "--vm", "3", "--type", "deleted", "--dry-run"}, 0, 0,
			[]string{"would replay #4 ", "1 event(s) would be replayed"}, []string{"one/1", "one/3 running"}},
		{"dry run from a sequence", []string{"replay", "--start-sequence", "3", "--dry-run"}, 0, 0,
			[]string{"#3 ", "#4 ", "2 event(s) would be replayed"}, []string{"#1 ", "#2 "}},
		{"dry run since the future", []string{"replay", "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "--dry-run"}, 0, 0,
			[]string{"0 event(s) would be replayed"}, nil},
		{"one vm", []string{"replay", "--vm", "2"}, 0, 1, []string{"replayed 1 event(s)"}, nil},
		{"everything", []string{"replay", "--all"}, 0, 5, []string{"replayed 5 event(s)"}, nil},
		{"by cloud since an hour", []string{"replay", "--cloud", "one", "--since", "1h"}, 0, 10, []string{"replayed 10 event(s)"}, nil},
		{"other cloud", []string{"replay", "--cloud", "two"}, 0, 0, []string{"replayed 0 event(s)"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := natstest.Events(t, e.JS)
			code, out, errs := e.run(t, tt.args...)
			if code != tt.code || (code != 0 && strings.Count(errs, "\n") != 1) {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, errs)
			}
			contains(t, out, tt.out, tt.not)
			after := natstest.Events(t, e.JS)
			if n := len(after) - len(before); n != tt.published {
				t.Fatalf("%d events published, want %d", n, tt.published)
			}
		})
	}
}
