package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmglue/vmglue/internal/cli"
)

// `vmglue serve` with nats.stream.replicas 3 on its embedded server (one
// server, not clustered) exits non-zero with the one line that says why,
// before it serves anything.
func TestServeReplicasNotClusteredExits(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vmglue.yaml")
	conf := "nats:\n  embedded:\n    listen: 127.0.0.1:0\n    data_dir: " + filepath.Join(dir, "data") +
		"\n  stream:\n    replicas: 3\nmetrics:\n  listen: \"\"\nlog:\n  format: json\n"
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := cli.Execute(ctx, []string{"serve", "-c", path}, &out, &errb)
	want := "vmglue: nats.stream.replicas cannot be met: 3 replicas wanted for stream VMGLUE_EVENTS, but the NATS server is not clustered (it holds one copy): set nats.stream.replicas: 1, or run a NATS cluster (deploy/nats/nats-cluster.conf)\n"
	if code == 0 || ctx.Err() != nil || !bytes.HasSuffix(errb.Bytes(), []byte(want)) {
		t.Fatalf("exit %d, stderr %q, want non-zero and %q", code, errb.String(), want)
	}
}
