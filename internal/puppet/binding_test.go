package puppet

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// Bindings on a real JetStream KV: a certname is bound once; another live
// VM is refused; a deleted (or never stored) holder is replaced; Release
// removes only the caller's binding.
func TestBindings(t *testing.T) {
	js, vms := provisioned(t)
	ctx := context.Background()
	b, err := OpenBindings(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	store := func(id, kind string) *eventbus.VM {
		vm := &eventbus.VM{Cloud: "one", ID: id, Name: "web", Kind: kind}
		raw, _ := json.Marshal(vm)
		if _, err := vms.Put(ctx, vm.Key(), raw); err != nil {
			t.Fatal(err)
		}
		return vm
	}
	holder := func(certname string) string {
		t.Helper()
		bd, _, err := b.Get(ctx, certname)
		if err != nil {
			t.Fatal(err)
		}
		if bd == nil {
			return ""
		}
		return bd.VM + " " + bd.PublicKey
	}
	const name = "web.cloud.test"
	first, second := store("1", eventbus.KindRunning), store("2", eventbus.KindRunning)
	if err := b.Bind(ctx, name, first, "sha256:k1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Bind(ctx, name, second, "sha256:k2"); !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), "vm one.1 (running)") {
		t.Fatalf("another live vm: %v, want ErrHeld naming one.1", err)
	}
	if err := b.Bind(ctx, name, first, "sha256:k1b"); err != nil || holder(name) != "one.1 sha256:k1b" {
		t.Fatalf("the same vm again: %v, holder %q", err, holder(name))
	}
	if err := b.Release(ctx, name, second.Key()); err != nil || holder(name) != "one.1 sha256:k1b" {
		t.Fatalf("release by another vm: %v, holder %q", err, holder(name))
	}
	store("1", eventbus.KindDeleted)
	if err := b.Bind(ctx, name, second, "sha256:k2"); err != nil || holder(name) != "one.2 sha256:k2" {
		t.Fatalf("after the holder's delete: %v, holder %q", err, holder(name))
	}
	if err := b.Release(ctx, name, second.Key()); err != nil || holder(name) != "" {
		t.Fatalf("release: %v, holder %q", err, holder(name))
	}
	// A holder whose snapshot is gone (never stored) is not live.
	ghost := &eventbus.VM{Cloud: "one", ID: "9"}
	if err := b.Bind(ctx, "other.cloud.test", ghost, "sha256:g"); err != nil {
		t.Fatal(err)
	}
	if err := b.Bind(ctx, "other.cloud.test", second, "sha256:k3"); err != nil {
		t.Fatalf("holder without a snapshot: %v", err)
	}
	if _, _, err := b.Get(ctx, "Evil..Name"); !errors.Is(err, ErrInvalidCertname) {
		t.Fatalf("invalid certname: %v", err)
	}
}

// A live VM's recorded certificate and node stay recorded when it is
// renamed, without a call to the CA or PuppetDB (both down here: a call
// would fail the Apply): a rename never revokes a live VM's certificate.
func TestApplyRenameOfLiveVMKeepsCertificate(t *testing.T) {
	cfg := testConfig(testenv.Puppet(t))
	cfg.CAURL, cfg.PuppetDBURL = closedURL(t), closedURL(t)
	tg := newTarget(t, cfg)
	vm := fakeVM("old", eventbus.KindRunning, nil)
	have, err := converge(t, tg, vm, nil)
	if err != nil {
		t.Fatal(err)
	}
	vm.Name = "new"
	out, err := converge(t, tg, vm, have)
	want := worker.Objects{"cert old.cloud.test": "", "node old.cloud.test": "", "cert new.cloud.test": "", "node new.cloud.test": ""}
	if err != nil || !maps.Equal(out, want) {
		t.Fatalf("rename: %v %v, want %v", out, err, want)
	}
}
