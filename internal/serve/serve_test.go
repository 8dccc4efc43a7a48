package serve_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natsserver"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/hooks/spool"
	"github.com/vmglue/vmglue/internal/serve"
	"github.com/vmglue/vmglue/internal/worker"
)

// With nats.url set, serve starts no embedded server and provisions the
// streams and buckets on the given NATS.
func TestServeExternalNATS(t *testing.T) {
	ns, err := natsserver.Start(natsserver.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	cfg := baseConfig(t)
	cfg.NATS.URL = ns.ClientURL()
	cfg.NATS.Embedded.Listen = "127.0.0.1:1" // would fail if it were used
	in := start(t, cfg)
	if in.Info.NATSURL != ns.ClientURL() {
		t.Fatalf("serve uses %s, want the external %s", in.Info.NATSURL, ns.ClientURL())
	}
	_, js := natstest.Connect(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range []string{eventbus.StreamEvents, eventbus.StreamDLQ} {
		if _, err := js.Stream(ctx, s); err != nil {
			t.Errorf("stream %s: %v", s, err)
		}
	}
	for _, b := range []string{eventbus.BucketVMs, eventbus.BucketApplied, eventbus.BucketLocks} {
		if _, err := js.KeyValue(ctx, b); err != nil {
			t.Errorf("bucket %s: %v", b, err)
		}
	}
}

// A worker that cannot start (here: its durable consumer exists with a
// deliver policy that cannot be changed) stops serve with that error, and
// serve never reports ready: systemd sees the failure instead of a healthy
// service that handles nothing.
func TestServeWorkerStartFailure(t *testing.T) {
	ns, err := natsserver.Start(natsserver.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	_, js := natstest.Connect(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eventbus.Provision(ctx, js, eventbus.ProvisionOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, eventbus.StreamEvents, jetstream.ConsumerConfig{
		Durable: worker.ConsumerName("dns"), DeliverPolicy: jetstream.DeliverNewPolicy, AckPolicy: jetstream.AckExplicitPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "tsig.secret")
	if err := os.WriteFile(secret, []byte("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(t)
	cfg.NATS.URL = ns.ClientURL()
	cfg.Workers = loadWorker(t, "dns", fmt.Sprintf("servers: [\"127.0.0.1:1\"]\ntsig: {name: vmglue, secret_file: %s}\nforward_zones: [cloud.test.]\n", secret))
	ready := false
	err = serve.Run(ctx, serve.Options{Config: cfg, Ready: func(serve.Info) { ready = true }}, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "consumer "+worker.ConsumerName("dns")) {
		t.Fatalf("serve returned %v, want the consumer error", err)
	}
	if ready {
		t.Fatal("serve reported ready with a worker that could not start")
	}
}

// metrics.spool_dirs: serve counts what waits in a hook's spool and what
// its quarantine holds (files that can never be sent).
func TestServeSpoolMetrics(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	sp := spool.New(dir)
	for i, quarantined := range []bool{false, true, true} {
		ev, err := eventbus.NewEvent(eventbus.VM{Cloud: "one", CloudType: "opennebula", ID: fmt.Sprint(90 + i), Kind: eventbus.KindRunning})
		if err != nil {
			t.Fatal(err)
		}
		if quarantined {
			_, err = sp.WriteQuarantined(&ev, errors.New("nats: maximum payload exceeded"))
		} else {
			_, err = sp.Write(&ev)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg := baseConfig(t)
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Metrics.SpoolDirs = []string{dir, filepath.Join(t.TempDir(), "missing")}
	in := start(t, cfg)
	awaitMetrics(t, in, fmt.Sprintf(`vmglue_spool_events{dir=%q} 1`, dir),
		fmt.Sprintf(`vmglue_spool_quarantined_files{dir=%q} 2`, dir),
		fmt.Sprintf(`vmglue_spool_readable{dir=%q} 1`, dir))
}

// The operator's page: on /ui/ of the metrics listener by default, on its
// own listener with web.listen (then not on metrics), off with
// web.disabled.
func TestServeWebListener(t *testing.T) {
	tests := []struct {
		name           string
		metrics        string
		listen         string
		disabled       bool
		onMetrics, own bool
	}{
		{"on metrics", "127.0.0.1:0", "", false, true, false},
		{"own listener", "127.0.0.1:0", "127.0.0.1:0", false, false, true},
		{"disabled", "127.0.0.1:0", "", true, false, false},
		// Metrics opened to other machines: the inventory is not.
		{"metrics off loopback", "0.0.0.0:0", "", false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig(t)
			cfg.Metrics.Listen = tt.metrics
			cfg.Web.Listen, cfg.Web.Disabled = tt.listen, tt.disabled
			in := start(t, cfg)
			status := func(url string) int {
				res, err := http.Get(url)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				return res.StatusCode
			}
			_, port, _ := net.SplitHostPort(in.Info.MetricsAddr)
			if got := status("http://127.0.0.1:" + port + "/ui/"); (got == http.StatusOK) != tt.onMetrics {
				t.Errorf("/ui/ on metrics: %d", got)
			}
			if (in.Info.WebURL != "") != (tt.onMetrics || tt.own) {
				t.Fatalf("WebURL %q", in.Info.WebURL)
			}
			if tt.own {
				if strings.Contains(in.Info.WebURL, in.Info.MetricsAddr) {
					t.Errorf("WebURL %q on the metrics listener", in.Info.WebURL)
				}
				if got := status(in.Info.WebURL + "workers"); got != http.StatusOK {
					t.Errorf("own listener /ui/workers: %d", got)
				}
				res, err := http.Get(strings.TrimSuffix(in.Info.WebURL, "ui/"))
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != http.StatusOK || res.Request.URL.Path != "/ui/" {
					t.Errorf("own listener /: %d at %s, want a redirect to /ui/", res.StatusCode, res.Request.URL)
				}
			}
		})
	}
}
