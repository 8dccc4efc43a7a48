package cli_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/hooks/spool"
	"github.com/vmglue/vmglue/internal/cli"
	"github.com/vmglue/vmglue/internal/ops/opstest"
)

// vmglue spool list shows what a hook spooled, one event a line; spool
// flush sends it, oldest first, and empties the spool.
func TestSpoolListFlush(t *testing.T) {
	srv := natstest.Start(t)
	dir := t.TempDir()
	var ids []string
	for _, id := range []string{"7", "8"} {
		ev, err := eventbus.NewEvent(opstest.VM(id, eventbus.KindRunning))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := spool.New(dir).Write(&ev); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := cli.Execute(context.Background(), append(args, "--dir", dir, "-s", srv.URL), &out, &errb); code != 0 {
			t.Fatalf("vmglue %s: exit %d, stderr %q", strings.Join(args, " "), code, errb.String())
		}
		return out.String()
	}
	lines := strings.Split(strings.TrimSpace(run("spool", "list")), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], ids[0]) || !strings.Contains(lines[1], ids[1]) {
		t.Fatalf("spool list: %q, want one line per event, oldest first", lines)
	}
	if out := run("spool", "flush"); !strings.Contains(out, "sent 2 spooled event(s)") {
		t.Fatalf("spool flush: %q", out)
	}
	_, js := natstest.Connect(t, srv.URL)
	evs := natstest.Events(t, js)
	if len(evs) != 2 || evs[0].ID != ids[0] || evs[1].ID != ids[1] {
		t.Fatalf("stored %d events, want %v in order", len(evs), ids)
	}
	if out := run("spool", "list"); out != "" {
		t.Fatalf("spool list after the flush: %q", out)
	}
}
