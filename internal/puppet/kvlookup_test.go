package puppet

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natsserver"
)

func TestKVLookup(t *testing.T) {
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: eventbus.BucketVMs})
	if err != nil {
		t.Fatal(err)
	}
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
