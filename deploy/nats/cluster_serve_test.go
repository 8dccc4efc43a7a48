package natsconf_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/monitor"
	"github.com/vmglue/vmglue/internal/serve"
	"github.com/vmglue/vmglue/internal/testenv"
)

// serveConfig writes the config of vmglue serve as role serve against
// url (a comma list) with nats.ca_file ca ("": none) and
// nats.stream.replicas set, and the workers of extra (YAML at the top
// level, "" for none); it returns its path.
func serveConfig(t *testing.T, url, ca string, replicas int, extra string) string {
	t.Helper()
	if ca != "" {
		ca = "  ca_file: " + ca + "\n"
	}
	return writeConfig(t, "nats:\n  url: "+url+"\n  user: serve\n  password_env: VMGLUE_NATS_SERVE_PASSWORD\n"+ca+
		"  stream: {replicas: "+strconv.Itoa(replicas)+"}\nmetrics:\n  listen: \"\"\n"+extra)
}

// writeConfig writes a vmglue config file and returns its path.
func writeConfig(t *testing.T, conf string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vmglue.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// loadConfig loads a config file written by writeConfig.
func loadConfig(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startServe runs vmglue serve with the config at path until the test
// ends; it returns serve's log once serve is ready.
func startServe(t *testing.T, path string) *testenv.LogBuffer {
	t.Helper()
	cfg := loadConfig(t, path)
	logs := &testenv.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- serve.Run(ctx, serve.Options{Config: cfg, Ready: func(serve.Info) { close(ready) }}, zerolog.New(logs))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("serve not ready after 60s")
	}
	return logs
}

// runServe runs vmglue serve (serveConfig) until the test ends; it returns
// serve's log once serve is ready.
func runServe(t *testing.T, url, ca string, replicas int, extra string) *testenv.LogBuffer {
	t.Helper()
	return startServe(t, serveConfig(t, url, ca, replicas, extra))
}

// warnings returns the warning lines of a serve's log.
func warnings(t *testing.T, logs *testenv.LogBuffer) []string {
	t.Helper()
	var w []string
	for _, e := range logs.Entries(t, "") {
		if e["level"] == "warn" {
			w = append(w, e["message"].(string))
		}
	}
	return w
}

// vmglue serve, given the three nodes' URLs, their CA (nats.ca_file) and
// nats.stream.replicas: 3,
// provisions every stream and bucket with three replicas on the cluster
// of the shipped nats-cluster.conf (the monitor worker's file_sd bucket
// too, raised from the one replica an older serve gave it), says so
// without a warning, and each role keeps exactly its permissions through
// the cluster (checked on another node than the one that answered serve,
// as a source would meet it).
func TestClusterShippedConfigR3(t *testing.T) {
	c := startCluster(t)
	_, js := natstest.ConnectRole(t, c.nodes[2].ClientURL(), eventbus.RoleServe, c.pw[eventbus.RoleServe], c.tls())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: monitor.BucketFileSD, History: 1, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	fileSD := "workers:\n  monitor:\n    file_sd:\n      dir: " + t.TempDir() + "\n      jobs: [{name: node, port: 9100}]\n"
	logs := runServe(t, c.urls(), c.caFile(), 3, fileSD)
	awaitReplicas(t, js, 3, append(streams, "KV_"+monitor.BucketFileSD)...)
	if w := warnings(t, logs); len(w) > 0 {
		t.Errorf("serve warned on a 3-node cluster with R3: %q", w)
	}
	p := logs.Entries(t, "streams and buckets provisioned")
	if len(p) != 1 || p[0]["cluster"] != "vmglue" || p[0]["replicas"] != 3.0 {
		t.Errorf("provisioned line: %v, want cluster vmglue, 3 replicas", p)
	}
	natstest.CheckRoles(t, c.nodes[2].ClientURL(), func(role string) string { return c.pw[role] }, c.tls())
	// CheckRoles provisions as serve with the defaults (one replica): the
	// cluster's streams keep their three.
	awaitReplicas(t, js, 3, streams...)
}
