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
	"github.com/vmglue/vmglue/hooks/opennebula/api/apitest"
	"github.com/vmglue/vmglue/hooks/opennebula/onedtest"
	"github.com/vmglue/vmglue/internal/cli"
	"github.com/vmglue/vmglue/internal/testenv"
)

// TestListenOpenNebula runs `vmglue listen opennebula` with a config file
// against a real nats-server, the one_hm stand-in (onedtest) and the
// in-test XML-RPC oned of the sweep (apitest: oned cannot be installed
// here): on start the sweep publishes a VM the stream never told, then a
// state change from the stream is published, and SIGTERM (the context)
// ends it with exit 0.
func TestListenOpenNebula(t *testing.T) {
	srv := natstest.Start(t)
	oned := onedtest.Start(t)
	const session = "oneadmin:listen-sweep-secret"
	api := apitest.Start(t, session)
	missed := testenv.OneVM{ID: 77, Name: "missed77", IP: "10.0.7.7", State: 3, LCM: 3, Time: time.Now().Unix()}
	if err := api.SetVM(string(testenv.OneVMXML(missed))); err != nil {
		t.Fatal(err)
	}
	auth := filepath.Join(t.TempDir(), "one_auth")
	if err := os.WriteFile(auth, []byte(session+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "vmglue.yaml")
	spoolDir := filepath.Join(t.TempDir(), "spool")
	text := fmt.Sprintf("nats:\n  url: %s\nlog:\n  format: json\nlisten:\n  opennebula:\n    cloud: one\n    endpoint: %s\n"+
		"    filters: [\"EVENT STATE VM/ACTIVE/RUNNING/\"]\n    spool_dir: %s\n    sweep_interval: -1s\n"+
		"sweep:\n  interval: -1s\n  opennebula:\n    - cloud: one\n      endpoint: %s\n      auth_file: %s\n",
		srv.URL, oned.Endpoint, spoolDir, api.URL, auth)
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
	_, js := natstest.Connect(t, srv.URL)
	testenv.WaitFor(t, 30*time.Second, "the start sweep's event", func() bool {
		evs := natstest.Events(t, js)
		return len(evs) == 1 && evs[0].Data.Name == "missed77"
	})
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
	testenv.WaitFor(t, 20*time.Second, "the stream's event", func() bool { return len(natstest.Events(t, js)) == 2 })
	if evs := natstest.Events(t, js); evs[1].ID != want.ID {
		t.Fatalf("stored %s after the sweep's, want %s", evs[1].ID, want.ID)
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
