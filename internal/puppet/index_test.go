package puppet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

func TestCertIndex(t *testing.T) {
	js, _ := provisioned(t)
	ctx := context.Background()
	idx := openIndex(t, js)
	const name = "web1.cloud.test"
	want := func(step string, keys ...string) {
		t.Helper()
		got, rev, err := idx.Get(ctx, name)
		if err != nil || !slices.Equal(got, keys) || (rev == 0) != (len(keys) == 0) {
			t.Fatalf("%s: got %v rev %d %v, want %v", step, got, rev, err, keys)
		}
	}
	want("empty")
	steps := []struct {
		step string
		op   func(context.Context, string, string) error
		vm   string
		want []string
	}{
		{"add", idx.Add, "one.1", []string{"one.1"}},
		{"add again", idx.Add, "one.1", []string{"one.1"}},
		{"add a second vm", idx.Add, "one.0", []string{"one.0", "one.1"}},
		{"remove one", idx.Remove, "one.1", []string{"one.0"}},
		{"remove unknown", idx.Remove, "one.9", []string{"one.0"}},
		{"remove the last", idx.Remove, "one.0", nil},
		{"add after delete", idx.Add, "one.2", []string{"one.2"}},
		{"remove again", idx.Remove, "one.2", nil},
	}
	for _, st := range steps {
		if err := st.op(ctx, name, st.vm); err != nil {
			t.Fatalf("%s: %v", st.step, err)
		}
		want(st.step, st.want...)
	}
	if _, _, err := idx.Get(ctx, "Not A Certname"); !errors.Is(err, ErrInvalidCertname) {
		t.Fatalf("invalid certname: %v", err)
	}

	// Concurrent writers (several puppet worker instances) lose nothing.
	var wg sync.WaitGroup
	var keys []string
	for i := range 8 {
		keys = append(keys, fmt.Sprintf("one.%d", i))
		wg.Go(func() {
			if err := idx.Add(ctx, "db.cloud.test", fmt.Sprintf("one.%d", i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	slices.Sort(keys)
	if got, _, err := idx.Get(ctx, "db.cloud.test"); err != nil || !slices.Equal(got, keys) {
		t.Fatalf("after concurrent adds: %v %v, want %v", got, err, keys)
	}
}

// Backfill indexes what the registry recorded before the index existed.
func TestCertIndexBackfill(t *testing.T) {
	js, _ := provisioned(t)
	ctx := context.Background()
	idx := openIndex(t, js)
	applied, err := js.KeyValue(ctx, eventbus.BucketApplied)
	if err != nil {
		t.Fatal(err)
	}
	for key, objs := range map[string]worker.Objects{
		"puppet.one.1": {"cert web1.cloud.test": "", "node web1.cloud.test": ""},
		"puppet.one.2": {}, // deleted: nothing to index
		"dns.one.1":    {"A web1.cloud.test.": "10.0.0.1"},
	} {
		b, _ := json.Marshal(worker.Record{Applied: objs})
		if _, err := applied.Put(ctx, key, b); err != nil {
			t.Fatal(err)
		}
	}
	reg, err := worker.OpenRegistry(ctx, js, "puppet")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if n, err := idx.Backfill(ctx, reg); err != nil || n != 1 {
			t.Fatalf("backfill: %d %v, want 1", n, err)
		}
	}
	if got, _, err := idx.Get(ctx, "web1.cloud.test"); err != nil || !slices.Equal(got, []string{"one.1"}) {
		t.Fatalf("index after backfill: %v %v", got, err)
	}
}

// The index is an accelerator: what it says is checked against the
// snapshots, and the pass over them decides when it has no live VM.
func TestKVLookupWithIndex(t *testing.T) {
	js, kv := provisioned(t)
	ctx := context.Background()
	idx := openIndex(t, js)
	put := func(vm *eventbus.VM) {
		t.Helper()
		b, _ := json.Marshal(vm)
		if _, err := kv.Put(ctx, vm.Key(), b); err != nil {
			t.Fatal(err)
		}
	}
	index := func(certname string, vms ...*eventbus.VM) {
		t.Helper()
		for _, vm := range vms {
			if err := idx.Add(ctx, certname, vm.Key()); err != nil {
				t.Fatal(err)
			}
		}
	}
	web := fakeVM("web", eventbus.KindRunning, nil)
	put(web)
	index("web.cloud.test", web)
	renamed := fakeVM("app", eventbus.KindRunning, nil) // indexed under its old name
	put(renamed)
	index("old.cloud.test", renamed)
	unindexed := fakeVM("new", eventbus.KindCreated, nil) // not indexed yet
	put(unindexed)
	gone := fakeVM("db", eventbus.KindDeleted, nil)
	put(gone)
	index("db.cloud.test", gone)
	twinA, twinB := fakeVM("twin", eventbus.KindRunning, nil), fakeVM("twin", eventbus.KindRunning, nil)
	twinB.Cloud = "two"
	put(twinA)
	put(twinB)
	index("twin.cloud.test", twinA, twinB)

	l, err := NewKVLookup(kv, Config{Domain: "cloud.test"})
	if err != nil {
		t.Fatal(err)
	}
	l.UseIndex(idx)
	tests := []struct {
		certname string
		want     string // VM key, "" for none
		err      error
	}{
		{"web.cloud.test", web.Key(), nil},
		{"old.cloud.test", "", nil},              // stale entry: its VM renders another name
		{"app.cloud.test", renamed.Key(), nil},   // found by the pass
		{"new.cloud.test", unindexed.Key(), nil}, // found by the pass
		{"db.cloud.test", gone.Key(), nil},       // only deleted: the pass names it
		{"twin.cloud.test", "", ErrAmbiguous},
	}
	for _, tc := range tests {
		vm, err := l.VMByCertname(ctx, tc.certname)
		got := ""
		if vm != nil {
			got = vm.Key()
		}
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("%s: got %q %v, want %q %v", tc.certname, got, err, tc.want, tc.err)
		}
	}
}

// Apply keeps the index in step: recorded with the certificate, gone once
// it is cleaned, kept while a conflict leaves the certificate in place.
func TestApplyKeepsCertnameIndex(t *testing.T) {
	s := testenv.Puppet(t)
	a := testenv.NewPuppetAdmin(t, s)
	js, _ := provisioned(t)
	idx := openIndex(t, js)
	indexed := func(certname string) []string {
		t.Helper()
		keys, _, err := idx.Get(context.Background(), certname)
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	tg := newTarget(t, testConfig(s))
	tg.SetIndex(idx)

	vm := fakeVM(uniq("idx"), eventbus.KindRunning, nil)
	name := vm.Name + ".cloud.test"
	have, err := converge(t, tg, vm, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := indexed(name); !slices.Equal(got, []string{vm.Key()}) {
		t.Fatalf("index after running: %v", got)
	}
	a.SignedCert(name)
	vm.Kind = eventbus.KindDeleted
	if out, err := converge(t, tg, vm, have); err != nil || len(out) != 0 {
		t.Fatalf("delete: %v %v", out, err)
	}
	if got := indexed(name); got != nil {
		t.Fatalf("index after delete: %v", got)
	}

	// A certificate that predates the VM: a conflict, the entry stays with
	// the recorded certificate (autosign checks the VM: deleted, refused).
	old := fakeVM(uniq("idxold"), eventbus.KindRunning, nil)
	oldName := old.Name + ".cloud.test"
	a.SignedCert(oldName)
	later := time.Now().Add(time.Hour)
	old.Times.Created = &later
	have, err = converge(t, tg, old, nil)
	if err != nil {
		t.Fatal(err)
	}
	old.Kind = eventbus.KindDeleted
	if _, err := converge(t, tg, old, have); !errors.Is(err, worker.ErrConflict) {
		t.Fatalf("want a conflict, got %v", err)
	}
	if got := indexed(oldName); !slices.Equal(got, []string{old.Key()}) {
		t.Fatalf("index after a conflict: %v", got)
	}
}
