package puppet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// autosignNATSHelper is this binary run by Puppet Server as its autosign
// policy against the JetStream state at url, as `vmglue autosign` runs
// (KVLookup over the snapshots, Bindings), without a challenge.
func autosignNATSHelper(url string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "refused: %v\n", err)
		return ExitError
	}
	nc, err := nats.Connect(url)
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(err)
	}
	kv, err := js.KeyValue(ctx, eventbus.BucketVMs)
	if err != nil {
		return fail(err)
	}
	lookup, err := NewKVLookup(kv, Config{Domain: "cloud.test"})
	if err != nil {
		return fail(err)
	}
	binder, err := OpenBindings(ctx, js)
	if err != nil {
		return fail(err)
	}
	return Main(ctx, os.Args[1:], os.Stdin, os.Stderr, Policy{Lookup: lookup, Binder: binder})
}

// installHelper makes Puppet Server run this test binary as its autosign
// policy, with env (KEY=value lines) set, until the test ends; files are
// extra files for the policy's directory.
func installHelper(t *testing.T, s *testenv.PuppetStack, env string, files map[string][]byte) string {
	t.Helper()
	dir := s.PolicyDir(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	policy := fmt.Sprintf("#!/bin/sh\n%s exec %s/puppet.test \"$@\"\n", strings.ReplaceAll(env, "DIR", dir), dir)
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"puppet.test", bin}, {"policy", []byte(policy)}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	testenv.UseAutosign(t, s, dir+"/policy")
	return dir
}

// bindingWorld is a Puppet stack whose autosign policy reads the VM
// snapshots and bindings of an embedded NATS, and a puppet worker target
// with those bindings.
type bindingWorld struct {
	s    *testenv.PuppetStack
	a    *testenv.PuppetAdmin
	vms  jetstream.KeyValue
	b    *Bindings
	tg   *Target
	seen time.Time // every VM was created then
}

func newBindingWorld(t *testing.T) *bindingWorld {
	s := testenv.Puppet(t)
	url, js, vms := provisionedAt(t)
	b, err := OpenBindings(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	installHelper(t, s, "VMGLUE_AUTOSIGN_HELPER_NATS="+url, nil)
	tg := newTarget(t, testConfig(s))
	tg.SetBindings(b)
	return &bindingWorld{s: s, a: testenv.NewPuppetAdmin(t, s), vms: vms, b: b, tg: tg, seen: time.Now().Add(-time.Hour)}
}

// vm stores the snapshot of VM one.<id> named name in kind, as the worker
// runtime does, and returns it.
func (w *bindingWorld) vm(t *testing.T, id, name, kind string) *eventbus.VM {
	t.Helper()
	created := w.seen
	vm := &eventbus.VM{Cloud: "one", CloudType: "opennebula", ID: id, Name: name, Kind: kind, Times: eventbus.Times{Created: &created}}
	if kind == eventbus.KindDeleted {
		ended := time.Now()
		vm.Times.Ended = &ended
	}
	b, err := json.Marshal(vm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.vms.Put(context.Background(), vm.Key(), b); err != nil {
		t.Fatal(err)
	}
	return vm
}

// boot runs the VM's agent for certname and reports whether it got its
// certificate.
func (w *bindingWorld) boot(t *testing.T, certname string) bool {
	t.Helper()
	signed, _ := bootstrap(t, w.s, certname, "")
	return signed
}

// The binding certname ↔ VM is made by autosign when it signs, on a real
// Puppet Server running the policy against real JetStream state, and a
// delete revokes only the certificate bound to that VM.
func TestBindingOnRealCA(t *testing.T) {
	w := newBindingWorld(t)
	ctx := context.Background()
	stamp := uniq("b")

	// A tenant renames its older VM to a newer VM's name and deletes it:
	// the victim's certificate stays signed, its node active; only the
	// attacker's own certificate is revoked.
	t.Run("rename attack", func(t *testing.T) {
		att, vic := "att"+stamp, "vic"+stamp
		attacker := w.vm(t, "100"+stamp[2:], att, eventbus.KindRunning)
		if !w.boot(t, att+".cloud.test") {
			t.Fatal("the attacker's own agent was not signed")
		}
		victim := w.vm(t, "101"+stamp[2:], vic, eventbus.KindRunning)
		if !w.boot(t, vic+".cloud.test") {
			t.Fatal("the victim's agent was not signed")
		}
		vicSerial, attSerial := w.a.CertSerial(vic+".cloud.test"), w.a.CertSerial(att+".cloud.test")
		w.a.ReplaceFacts(vic + ".cloud.test")
		if b, _, err := w.b.Get(ctx, vic+".cloud.test"); err != nil || b == nil || b.VM != victim.Key() {
			t.Fatalf("binding of the victim's certname: %+v %v, want vm %s", b, err, victim.Key())
		}
		have, err := converge(t, w.tg, attacker, nil)
		if err != nil {
			t.Fatal(err)
		}
		renamed := w.vm(t, attacker.ID, vic, eventbus.KindRunning)
		if have, err = converge(t, w.tg, renamed, have); err != nil {
			t.Fatal(err)
		}
		deleted := w.vm(t, attacker.ID, vic, eventbus.KindDeleted)
		out, err := converge(t, w.tg, deleted, have)
		if !worker.IsPermanent(err) || !errors.Is(err, worker.ErrConflict) || !strings.Contains(err.Error(), "bound to vm "+victim.Key()) {
			t.Fatalf("attacker's delete: err %v, want a conflict naming the victim", err)
		}
		t.Logf("dead letter reason: %v", err)
		if st := w.a.CertState(vic + ".cloud.test"); st != "signed" || w.a.Revoked(vicSerial) {
			t.Errorf("victim's certificate: state %q, revoked %v; want signed, not revoked", st, w.a.Revoked(vicSerial))
		}
		if _, active := w.a.Node(vic + ".cloud.test"); !active {
			t.Error("victim's node deactivated")
		}
		if st := w.a.CertState(att + ".cloud.test"); st != "" || !w.a.Revoked(attSerial) {
			t.Errorf("attacker's own certificate: state %q, revoked %v; want cleaned and revoked", st, w.a.Revoked(attSerial))
		}
		if _, ok := out["cert "+att+".cloud.test"]; ok {
			t.Errorf("attacker's cleaned certificate still recorded: %v", out)
		}
	})

	// A live VM is renamed: its certificate is not revoked; a new agent in
	// the new name is signed; the delete cleans both.
	t.Run("rename of a live vm", func(t *testing.T) {
		old, nu := "lr"+stamp, "lrnew"+stamp
		vm := w.vm(t, "102"+stamp[2:], old, eventbus.KindRunning)
		if !w.boot(t, old+".cloud.test") {
			t.Fatal("agent not signed")
		}
		serial := w.a.CertSerial(old + ".cloud.test")
		have, err := converge(t, w.tg, vm, nil)
		if err != nil {
			t.Fatal(err)
		}
		renamed := w.vm(t, vm.ID, nu, eventbus.KindRunning)
		if have, err = converge(t, w.tg, renamed, have); err != nil {
			t.Fatal(err)
		}
		if st := w.a.CertState(old + ".cloud.test"); st != "signed" || w.a.Revoked(serial) {
			t.Fatalf("renamed live vm's certificate: state %q, revoked %v; want signed", st, w.a.Revoked(serial))
		}
		if _, ok := have["cert "+old+".cloud.test"]; !ok {
			t.Fatalf("renamed live vm's certificate no longer recorded: %v", have)
		}
		if !w.boot(t, nu+".cloud.test") {
			t.Fatal("agent in the new name not signed")
		}
		newSerial := w.a.CertSerial(nu + ".cloud.test")
		out, err := converge(t, w.tg, w.vm(t, vm.ID, nu, eventbus.KindDeleted), have)
		if err != nil || len(out) != 0 {
			t.Fatalf("delete: %v %v", out, err)
		}
		if !w.a.Revoked(serial) || !w.a.Revoked(newSerial) {
			t.Errorf("after delete: old revoked %v, new revoked %v; want both", w.a.Revoked(serial), w.a.Revoked(newSerial))
		}
	})

	// A name reused after a delete: the new VM gets a fresh certificate,
	// the old one was revoked once, and a replay of the old VM's delete
	// leaves the new certificate alone.
	t.Run("name reused after a delete", func(t *testing.T) {
		name := "ru" + stamp
		certname := name + ".cloud.test"
		first := w.vm(t, "103"+stamp[2:], name, eventbus.KindRunning)
		if !w.boot(t, certname) {
			t.Fatal("first agent not signed")
		}
		oldSerial := w.a.CertSerial(certname)
		have, err := converge(t, w.tg, first, nil)
		if err != nil {
			t.Fatal(err)
		}
		gone := w.vm(t, first.ID, name, eventbus.KindDeleted)
		if out, err := converge(t, w.tg, gone, have); err != nil || len(out) != 0 {
			t.Fatalf("delete: %v %v", out, err)
		}
		if !w.a.Revoked(oldSerial) || w.a.CertState(certname) != "" {
			t.Fatalf("old certificate: revoked %v, state %q", w.a.Revoked(oldSerial), w.a.CertState(certname))
		}
		second := w.vm(t, "104"+stamp[2:], name, eventbus.KindRunning)
		if !w.boot(t, certname) {
			t.Fatal("the new vm's agent was not signed")
		}
		newSerial := w.a.CertSerial(certname)
		if newSerial.Cmp(oldSerial) == 0 {
			t.Fatal("the new vm got the old serial")
		}
		if b, _, err := w.b.Get(ctx, certname); err != nil || b == nil || b.VM != second.Key() {
			t.Fatalf("binding after reuse: %+v %v, want vm %s", b, err, second.Key())
		}
		_, err = converge(t, w.tg, gone, have) // a replayed delete of the first VM
		if !errors.Is(err, worker.ErrConflict) {
			t.Fatalf("replayed delete: %v, want a conflict", err)
		}
		if st := w.a.CertState(certname); st != "signed" || w.a.Revoked(newSerial) {
			t.Errorf("new certificate after the replay: state %q, revoked %v", st, w.a.Revoked(newSerial))
		}
		out, err := converge(t, w.tg, w.vm(t, second.ID, name, eventbus.KindDeleted), have)
		if err != nil || len(out) != 0 || !w.a.Revoked(newSerial) {
			t.Fatalf("second vm's delete: %v %v, revoked %v", out, err, w.a.Revoked(newSerial))
		}
	})

	// A VM that only exists (PENDING: kind created, never booted) gets no
	// certificate, whoever asks in its name; the reason is in the log.
	t.Run("pending vm stays unsigned", func(t *testing.T) {
		name := "pe" + stamp
		w.vm(t, "105"+stamp[2:], name, eventbus.KindCreated)
		if w.boot(t, name+".cloud.test") {
			t.Fatal("a never-booted vm's csr was signed")
		}
		if st := w.a.CertState(name + ".cloud.test"); st != "requested" {
			t.Fatalf("state %q, want requested", st)
		}
		testenv.WaitFor(t, 10*time.Second, "the refusal in the server log", func() bool {
			return strings.Contains(w.s.ServerLogLines(name+".cloud.test"), "is created (autosign signs only a VM that is booting or booted)")
		})
	})
}
