package serve_test

import (
	"context"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natsserver"
	"github.com/vmglue/vmglue/eventbus/natstest"
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
