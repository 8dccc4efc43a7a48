package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/hooks/opennebula"
	"github.com/vmglue/vmglue/hooks/opennebula/onedtest"
	"github.com/vmglue/vmglue/internal/cli"
)

// TestListenOpenNebula runs `vmglue listen opennebula` with a config file
// against a real nats-server and the one_hm stand-in (onedtest: oned cannot
// be installed here): a state change is published and SIGTERM (the
// context) ends it with exit 0.
func TestListenOpenNebula(t *testing.T) {
	srv := natstest.Start(t)
	oned := onedtest.Start(t)
	cfg := filepath.Join(t.TempDir(), "vmglue.yaml")
	spoolDir := filepath.Join(t.TempDir(), "spool")
	text := fmt.Sprintf("nats:\n  url: %s\nlog:\n  format: json\nlisten:\n  opennebula:\n    cloud: one\n    endpoint: %s\n"+
		"    filters: [\"EVENT STATE VM/ACTIVE/RUNNING/\"]\n    spool_dir: %s\n    sweep_interval: -1s\n", srv.URL, oned.Endpoint, spoolDir)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Execute(ctx, []string{"listen", "opennebula", "-c", cfg, "--metrics-listen", "127.0.0.1:0"}, &stdout, &stderr)
	}()
	oned.WaitSubscribed(t, "EVENT STATE VM/ACTIVE/RUNNING/")
	doc, err := os.ReadFile("../../testdata/opennebula/running-2nics.xml")
	if err != nil {
		t.Fatal(err)
	}
	if err := oned.Publish(doc); err != nil {
		t.Fatal(err)
	}
	vm, err := opennebula.ParseVM(doc, "one")
	if err != nil {
		t.Fatal(err)
	}
	want, err := eventbus.NewEvent(vm)
	if err != nil {
		t.Fatal(err)
	}
	_, js := natstest.Connect(t, srv.URL)
	deadline := time.Now().Add(20 * time.Second)
	for len(natstest.Events(t, js)) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if evs := natstest.Events(t, js); len(evs) != 1 || evs[0].ID != want.ID {
		t.Fatalf("stored %v, want %s", evs, want.ID)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("listen did not stop on SIGTERM")
	}
	if !strings.Contains(stderr.String(), `"subscribed to oned's stream`) {
		t.Fatalf("log: %s", stderr.String())
	}
}
