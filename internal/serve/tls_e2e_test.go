package serve_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/cli"
	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/serve"
	"github.com/vmglue/vmglue/internal/testenv"
)

// vmglue serve on an external NATS that demands TLS (a real nats-server,
// its certificate from a CA the test makes), configured as an operator
// writes it: nats.url (tls://, or nats://: the server asks for TLS and the
// client upgrades) and nats.ca_file. It connects, provisions, and
// converges the event a hook published over TLS (VMGLUE_NATS_CA): the
// monitor worker's file_sd gets the VM's target, and `vmglue status` with
// the same config reads the bus. Without nats.ca_file serve
// exits at once with the reason (it used to wait 30 s, retrying in
// silence, and report a stream lookup's timeout), and the password is in
// neither its error nor its log.
func TestServeOverTLS(t *testing.T) {
	const password = "serve-password-5b0e7d1f44"
	t.Setenv("TLS_TEST_SERVE_PASSWORD", password)
	for i, tt := range []struct {
		name, scheme string
		ca           bool
		err          string // "": serve runs and converges
	}{
		{"tls URL", "tls://", true, ""},
		{"nats URL", "nats://", true, ""},
		{"no ca_file", "tls://", false, "certificate signed by unknown authority"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := natstest.StartTLS(t)
			sd := t.TempDir()
			conf := fmt.Sprintf("nats:\n  url: %s\n  user: serve\n  password_env: TLS_TEST_SERVE_PASSWORD\n",
				tt.scheme+strings.TrimPrefix(srv.URL, "tls://"))
			if tt.ca {
				conf += "  ca_file: " + srv.CAFile + "\n"
			}
			path := writeFile(t, "vmglue.yaml", conf+`metrics: {listen: ""}
workers:
  monitor:
    file_sd: {dir: `+sd+`, jobs: [{name: node, port: 9100}]}
`)
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if tt.err != "" {
				logs := &testenv.LogBuffer{}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				err := serve.Run(ctx, serve.Options{Config: cfg}, zerolog.New(logs))
				if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("serve: %v (context: %v), want at once an error saying %q", err, ctx.Err(), tt.err)
				}
				if strings.Contains(err.Error()+logs.String(), password) {
					t.Errorf("the password is in serve's error or log: %v\n%s", err, logs.String())
				}
				return
			}
			in := start(t, cfg)
			id := 50 + i
			ip := fmt.Sprintf("127.0.0.%d", id)
			hook(t, in, t.TempDir(), running(id, fmt.Sprintf("web%d", id), ip, "", time.Now().Unix()), "running", "VMGLUE_NATS_CA="+srv.CAFile)
			testenv.WaitFor(t, 30*time.Second, "file_sd entry of VM "+ip, func() bool {
				_, ok := sdTargets(t, filepath.Join(sd, "node.json"))[ip+":9100"]
				return ok
			})
			// The ops commands read the same nats.url and nats.ca_file.
			var out, errb bytes.Buffer
			if code := cli.Execute(context.Background(), []string{"status", "-c", path}, &out, &errb); code != 0 || !strings.Contains(out.String(), eventbus.StreamEvents) {
				t.Errorf("vmglue status over TLS: exit %d, %s%s", code, out.String(), errb.String())
			}
		})
	}
}
