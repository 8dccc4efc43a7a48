package serve_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/puppet"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// puppetConfig points the puppet worker at the test stack, in the YAML shape
// of internal/puppet/README.md.
func puppetConfig(t *testing.T, s *testenv.PuppetStack) *config.Config {
	t.Helper()
	cfg := baseConfig(t)
	raw := fmt.Sprintf(`ca_url: %s
puppetdb_url: %s
tls:
  ca_file: %s
  cert_file: %s
  key_file: %s
domain: cloud.test
certname: "{{.Name}}.{{.Domain}}"
timeout: 5s
puppetdb_wait: 5s
on_running:
  check_access: true
`, s.CAURL, s.PuppetDBURL, s.CAFile, s.CertFile, s.KeyFile)
	cfg.Workers = loadWorker(t, "puppet", raw)
	return cfg
}

// A VM's agent got its certificate and sent facts; the VM's RUNNING hook
// makes them the VM's, its DONE hook revokes and cleans the certificate
// (the CRL lists it) and deactivates the node. A certname that is not a
// live VM's, also one a deleted VM would have had, stays untouched.
func TestPuppetHookCleansCertAndNode(t *testing.T) {
	s := testenv.Puppet(t)
	a := testenv.NewPuppetAdmin(t, s)
	stamp := time.Now().UnixNano() % 1e8
	name, foreign := fmt.Sprintf("e2e%d", stamp), fmt.Sprintf("infra%d", stamp)
	certname, foreignCert := name+".cloud.test", foreign+".cloud.test"
	serial := a.SignedCert(certname)
	a.ReplaceFacts(certname)
	a.SignedCert(foreignCert)
	a.ReplaceFacts(foreignCert)

	in := start(t, puppetConfig(t, s))
	_, js := natstest.Connect(t, in.Info.NATSURL)
	reg, err := worker.OpenRegistry(context.Background(), js, "puppet")
	if err != nil {
		t.Fatal(err)
	}
	idx, err := puppet.OpenCertIndex(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	indexed := func() []string {
		keys, _, err := idx.Get(context.Background(), certname)
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	spool := t.TempDir()
	v := running(51, name, "10.0.0.51", "", time.Now().Unix())

	t0 := time.Now()
	hook(t, in.Info.NATSURL, spool, v, "running")
	want := worker.Objects{"cert " + certname: "", "node " + certname: ""}
	testenv.WaitFor(t, 20*time.Second, "certificate and node recorded as the VM's", func() bool {
		r, _, err := reg.Get(context.Background(), "one.51")
		return err == nil && r != nil && r.Applied.Equal(want)
	})
	t.Logf("RUNNING hook → ownership recorded: %s", time.Since(t0).Round(time.Millisecond))
	if keys := indexed(); !slices.Equal(keys, []string{"one.51"}) {
		t.Errorf("certname index of %s: %v, want [one.51]", certname, keys)
	}
	if st := a.CertState(certname); st != "signed" {
		t.Fatalf("running VM's certificate in state %q, want signed", st)
	}
	if _, active := a.Node(certname); !active {
		t.Fatal("running VM's node deactivated")
	}

	// A VM vmglue never saw running is deleted; its certname is a host's
	// that is not a VM of ours.
	hook(t, in.Info.NATSURL, spool, done(running(52, foreign, "10.0.0.52", "", time.Now().Unix())), "done")

	t0 = time.Now()
	hook(t, in.Info.NATSURL, spool, done(v), "done")
	testenv.WaitFor(t, 20*time.Second, "certificate cleaned", func() bool { return a.CertState(certname) == "" })
	testenv.WaitFor(t, 10*time.Second, "node deactivated", func() bool {
		known, active := a.Node(certname)
		return known && !active
	})
	t.Logf("DONE hook → certificate cleaned and node deactivated: %s", time.Since(t0).Round(time.Millisecond))
	if !a.Revoked(serial) {
		t.Errorf("the CRL does not list serial %s of %s", serial, certname)
	}
	idle(t, js, "puppet")
	if r, _, err := reg.Get(context.Background(), "one.51"); err != nil || (r != nil && len(r.Applied)+len(r.Pending) > 0) {
		t.Errorf("registry after delete: %+v %v", r, err)
	}
	if keys := indexed(); keys != nil {
		t.Errorf("certname index of %s after delete: %v", certname, keys)
	}
	if st := a.CertState(foreignCert); st != "signed" {
		t.Errorf("foreign certificate %s in state %q, want signed", foreignCert, st)
	}
	if _, active := a.Node(foreignCert); !active {
		t.Errorf("foreign node %s deactivated", foreignCert)
	}
	if dl := deadLetters(t, js); len(dl) != 0 {
		t.Errorf("dead letters: %+v", dl)
	}
}

// A new VM gets the certname of a host whose certificate the CA issued
// before the VM existed (its STIME is an hour ahead): the VM's DONE hook
// leaves that certificate signed and its node active, and the event is
// dead-lettered as a conflict naming the certname.
func TestPuppetHookLeavesOlderCertificate(t *testing.T) {
	s := testenv.Puppet(t)
	a := testenv.NewPuppetAdmin(t, s)
	name := fmt.Sprintf("older%d", time.Now().UnixNano()%1e8)
	certname := name + ".cloud.test"
	serial := a.SignedCert(certname)
	a.ReplaceFacts(certname)

	in := start(t, puppetConfig(t, s))
	_, js := natstest.Connect(t, in.Info.NATSURL)
	reg, err := worker.OpenRegistry(context.Background(), js, "puppet")
	if err != nil {
		t.Fatal(err)
	}
	spool := t.TempDir()
	// running() puts STIME 100 s before the transition time.
	v := running(53, name, "10.0.0.53", "", time.Now().Add(time.Hour).Unix()+100)
	hook(t, in.Info.NATSURL, spool, v, "running")
	want := worker.Objects{"cert " + certname: "", "node " + certname: ""}
	testenv.WaitFor(t, 20*time.Second, "certificate and node recorded as the VM's", func() bool {
		r, _, err := reg.Get(context.Background(), "one.53")
		return err == nil && r != nil && r.Applied.Equal(want)
	})

	hook(t, in.Info.NATSURL, spool, done(v), "done")
	var dl []worker.DeadLetter
	testenv.WaitFor(t, 20*time.Second, "conflict dead-lettered", func() bool {
		dl = deadLetters(t, js)
		return len(dl) > 0
	})
	if len(dl) != 1 || dl[0].Worker != "puppet" || dl[0].Reason != worker.ReasonConflict || !strings.Contains(dl[0].Error, certname) {
		t.Fatalf("dead letters: %+v", dl)
	}
	t.Logf("dead letter: %s", dl[0].Error)
	if st := a.CertState(certname); st != "signed" {
		t.Errorf("older certificate %s in state %q, want signed", certname, st)
	}
	if a.Revoked(serial) {
		t.Errorf("the CRL lists serial %s of %s", serial, certname)
	}
	if _, active := a.Node(certname); !active {
		t.Errorf("node %s deactivated", certname)
	}
}
