package puppet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natsserver"
)

// provisioned starts an embedded nats-server with vmglue's streams and
// buckets and returns JetStream and the bucket eventbus.BucketVMs.
func provisioned(t testing.TB) (jetstream.JetStream, jetstream.KeyValue) {
	t.Helper()
	_, js, kv := provisionedAt(t)
	return js, kv
}

// provisionedAt is provisioned, with the server's client URL.
func provisionedAt(t testing.TB) (string, jetstream.JetStream, jetstream.KeyValue) {
	t.Helper()
	ns, err := natsserver.Start(natsserver.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := eventbus.Provision(ctx, js, eventbus.ProvisionOptions{}); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, eventbus.BucketVMs)
	if err != nil {
		t.Fatal(err)
	}
	return ns.ClientURL(), js, kv
}

// openIndex opens the provisioned certname index.
func openIndex(t testing.TB, js jetstream.JetStream) *CertIndex {
	t.Helper()
	idx, err := OpenCertIndex(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func TestKVLookup(t *testing.T) {
	_, kv := provisioned(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := NewKVLookup(kv, Config{Domain: "cloud.test"})
	if err != nil {
		t.Fatal(err)
	}
	if vm, err := l.VMByCertname(ctx, "web1.cloud.test"); vm != nil || err != nil {
		t.Fatalf("empty bucket: %v %v", vm, err)
	}
	put := func(value any, vm *eventbus.VM) {
		t.Helper()
		b, _ := json.Marshal(value)
		if _, err := kv.Put(ctx, vm.Key(), b); err != nil {
			t.Fatal(err)
		}
	}
	web1 := fakeVM("web1", eventbus.KindRunning, nil)
	put(web1, web1)
	old := fakeVM("db1", eventbus.KindDeleted, nil)
	old.ID = "7"
	put(old, old)
	db1 := fakeVM("DB1", eventbus.KindStarting, nil) // certnames are lower-cased
	ev, err := eventbus.NewEvent(*db1)
	if err != nil {
		t.Fatal(err)
	}
	put(ev, db1) // stored as a whole event
	if _, err := kv.Put(ctx, "one.garbage", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		certname string
		key      string
		kind     string
	}{
		{"web1.cloud.test", web1.Key(), eventbus.KindRunning},
		{"db1.cloud.test", db1.Key(), eventbus.KindStarting}, // the live one wins over the deleted one
		{"nobody.cloud.test", "", ""},
	}
	for _, tc := range tests {
		vm, err := l.VMByCertname(ctx, tc.certname)
		switch {
		case err != nil:
			t.Errorf("%s: %v", tc.certname, err)
		case tc.key == "" && vm != nil:
			t.Errorf("%s: found %s", tc.certname, vm.Key())
		case tc.key != "" && (vm == nil || vm.Key() != tc.key || vm.Kind != tc.kind):
			t.Errorf("%s: got %+v, want %s (%s)", tc.certname, vm, tc.key, tc.kind)
		}
	}
	twin := fakeVM("web1", eventbus.KindRunning, nil)
	twin.Cloud = "other"
	put(twin, twin)
	if _, err := l.VMByCertname(ctx, "web1.cloud.test"); !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("two live VMs with one certname: %v", err)
	}
}

// BenchmarkKVLookup measures one autosign lookup over a bucket of 10,000
// snapshots (half of them deleted), as `vmglue autosign` does per CSR:
// the pass over the bucket, and the certname index. Figures: make
// bench-autosign.
func BenchmarkKVLookup(b *testing.B) {
	js, kv := provisioned(b)
	ctx := context.Background()
	idx := openIndex(b, js)
	const n = 10000
	for i := range n {
		kind := eventbus.KindRunning
		if i%2 == 1 {
			kind = eventbus.KindDeleted
		}
		vm := fakeVM(fmt.Sprintf("vm%d", i), kind, map[string]string{"PUPPET_CHALLENGE": "x"})
		v, _ := json.Marshal(vm)
		if _, err := kv.Put(ctx, vm.Key(), v); err != nil {
			b.Fatal(err)
		}
		if kind == eventbus.KindRunning {
			if err := idx.Add(ctx, vm.Name+".cloud.test", vm.Key()); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, bc := range []struct {
		name  string
		index bool
	}{{"scan", false}, {"index", true}} {
		b.Run(bc.name, func(b *testing.B) {
			l, err := NewKVLookup(kv, Config{Domain: "cloud.test"})
			if err != nil {
				b.Fatal(err)
			}
			if bc.index {
				l.UseIndex(idx)
			}
			for b.Loop() {
				if vm, err := l.VMByCertname(ctx, "vm4242.cloud.test"); err != nil || vm == nil {
					b.Fatalf("lookup: %v %v", vm, err)
				}
			}
		})
	}
}
