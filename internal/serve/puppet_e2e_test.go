package serve_test

import (
	"context"
	"fmt"
	"maps"
	"math/big"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/puppet"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// puppetConfig points the puppet worker at the test stack, in the YAML shape
// of internal/puppet/README.md; extra is appended to the section.
func puppetConfig(t *testing.T, s *testenv.PuppetStack, extra ...string) *config.Config {
	t.Helper()
	cfg := baseConfig(t)
	cfg.Workers = loadWorker(t, "puppet", puppetWorkerYAML(s)+strings.Join(extra, ""))
	return cfg
}

// puppetWorkerYAML is the workers.puppet section for the test stack.
func puppetWorkerYAML(s *testenv.PuppetStack) string {
	return fmt.Sprintf(`ca_url: %s
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
}

// bootedAgent plays the agent of a new VM named prefix<stamp>: its
// certificate is signed and its facts are in PuppetDB.
func bootedAgent(a *testenv.PuppetAdmin, prefix string) (name, certname string, serial *big.Int) {
	name = fmt.Sprintf("%s%d", prefix, time.Now().UnixNano()%1e8)
	certname = name + ".cloud.test"
	serial = a.SignedCert(certname)
	a.ReplaceFacts(certname)
	return name, certname, serial
}

// bind plays `vmglue autosign` for a certificate signed by the test: it
// binds certname to the VM key (cloud one) with the certificate's key.
func bind(t *testing.T, a *testenv.PuppetAdmin, js jetstream.JetStream, certname, id string) {
	t.Helper()
	b, err := puppet.OpenBindings(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	vm := &eventbus.VM{Cloud: "one", ID: id}
	if err := b.Bind(context.Background(), certname, vm, puppet.PublicKeyID(a.CertPublicKey(certname))); err != nil {
		t.Fatal(err)
	}
}

// recorded waits until the puppet worker recorded the certificate and node
// of certname as the VM key's.
func recorded(t *testing.T, reg *worker.Registry, key, certname string) {
	t.Helper()
	want := worker.Objects{"cert " + certname: "", "node " + certname: ""}
	testenv.WaitFor(t, 20*time.Second, "certificate and node recorded as vm "+key+"'s", func() bool {
		r, _, err := reg.Get(context.Background(), key)
		return err == nil && r != nil && maps.Equal(r.Applied, want)
	})
}

// cleaned waits until the certificate of certname is gone from the CA and
// its node deactivated, then checks that the CRL lists serial, the puppet
// worker is idle and the VM key's registry record is empty.
func cleaned(t *testing.T, a *testenv.PuppetAdmin, js jetstream.JetStream, reg *worker.Registry, key, certname string, serial *big.Int) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, "certificate cleaned", func() bool { return a.CertState(certname) == "" })
	testenv.WaitFor(t, 10*time.Second, "node deactivated", func() bool {
		known, active := a.Node(certname)
		return known && !active
	})
	if !a.Revoked(serial) {
		t.Errorf("the CRL does not list serial %s of %s", serial, certname)
	}
	idle(t, js, "puppet")
	if r, _, err := reg.Get(context.Background(), key); err != nil || (r != nil && len(r.Applied)+len(r.Pending) > 0) {
		t.Errorf("registry of %s after delete: %+v %v", key, r, err)
	}
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
	_, js := in.connect(t)
	bind(t, a, js, certname, "51")
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
	hook(t, in, spool, v, "running")
	recorded(t, reg, "one.51", certname)
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
	hook(t, in, spool, done(running(52, foreign, "10.0.0.52", "", time.Now().Unix())), "done")

	t0 = time.Now()
	hook(t, in, spool, done(v), "done")
	cleaned(t, a, js, reg, "one.51", certname, serial)
	t.Logf("DONE hook → certificate cleaned and node deactivated: %s", time.Since(t0).Round(time.Millisecond))
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

// A new VM gets the certname of a host whose certificate vmglue autosign
// did not sign for it (issued before the VM existed: its STIME is an hour
// ahead): the VM's DONE hook leaves that certificate signed and its node
// active, and the event is dead-lettered as a conflict naming the certname.
func TestPuppetHookLeavesOlderCertificate(t *testing.T) {
	s := testenv.Puppet(t)
	a := testenv.NewPuppetAdmin(t, s)
	name, certname, serial := bootedAgent(a, "older")

	in := start(t, puppetConfig(t, s))
	_, js := in.connect(t)
	reg, err := worker.OpenRegistry(context.Background(), js, "puppet")
	if err != nil {
		t.Fatal(err)
	}
	spool := t.TempDir()
	// running() puts STIME 100 s before the transition time.
	v := running(53, name, "10.0.0.53", "", time.Now().Add(time.Hour).Unix()+100)
	hook(t, in, spool, v, "running")
	recorded(t, reg, "one.53", certname)

	hook(t, in, spool, done(v), "done")
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

// autosignChallenge is the agents' challengePassword policy: the section
// autosign reads besides the certname template.
const autosignChallenge = "autosign:\n  require_challenge: true\n  challenge_attribute: PUPPET_CHALLENGE\n"

// Puppet Server runs the real `vmglue autosign` binary, through the
// wrapper of deploy/puppet, against the JetStream state of a running
// `vmglue serve`: the RUNNING hooks of two VMs carry a PUPPET_CHALLENGE
// (sent as its MAC under the challenge key both hold), then real agents boot. The VM's agent with the
// right challenge is signed; the other VM's agent with a wrong challenge
// and an agent whose certname is no VM's stay pending, each refusal's
// reason in Puppet Server's log. The DONE hooks clean up after them.
func TestPuppetAutosignFromServeState(t *testing.T) {
	s := testenv.Puppet(t)
	a := testenv.NewPuppetAdmin(t, s)
	stamp := time.Now().UnixNano() % 1e8
	good, wrong, unknown := fmt.Sprintf("as%d", stamp), fmt.Sprintf("aw%d", stamp), fmt.Sprintf("au%d", stamp)

	in := start(t, puppetConfig(t, s, autosignChallenge))
	_, js := in.connect(t)

	// Everything Puppet Server runs must be reachable by the puppet user:
	// the binary, its configuration (as an operator writes it) and the wrapper.
	dir := s.PolicyDir(t)
	t0 := time.Now()
	bin, err := testenv.BuildBinary("github.com/vmglue/vmglue/cmd/vmglue", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %s", bin, time.Since(t0).Round(time.Millisecond))
	// The challenge key, as an operator installs it on both hosts: the
	// hook's copy readable by its user, autosign's by the puppet group.
	keyFile := filepath.Join(dir, "challenge.key")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("c0ffee", 8)+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	grp, err := user.LookupGroup("puppet")
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(grp.Gid)
	if err := os.Chown(keyFile, 0, gid); err != nil {
		t.Fatal(err)
	}
	// autosign's NATS credential, installed as the README says:
	// root:puppet 0640, named in nats.autosign.
	pw, err := os.ReadFile(eventbus.CredentialPath(in.Info.DataDir, eventbus.RoleAutosign))
	if err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "autosign-nats-password")
	if err := os.WriteFile(pwFile, pw, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(pwFile, 0, gid); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("nats:\n  url: %s\n  autosign: {user: autosign, password_file: %s}\nworkers:\n  puppet:\n%s", in.Info.NATSURL, pwFile,
		indent(puppetWorkerYAML(s)+autosignChallenge+"  challenge_key_file: "+keyFile+"\n", "    "))
	wrapper, err := os.ReadFile("../../deploy/puppet/vmglue-autosign")
	if err != nil {
		t.Fatal(err)
	}
	wrapped := strings.NewReplacer("/usr/local/bin/vmglue", bin, "/etc/vmglue/vmglue.yaml", dir+"/vmglue.yaml").Replace(string(wrapper))
	for _, f := range []struct {
		name, text string
		mode       os.FileMode
	}{{"vmglue.yaml", conf, 0o644}, {"vmglue-autosign", wrapped, 0o755}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.text), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	testenv.UseAutosign(t, s, dir+"/vmglue-autosign")

	reg, err := worker.OpenRegistry(context.Background(), js, "puppet")
	if err != nil {
		t.Fatal(err)
	}
	spool := t.TempDir()
	vms := []testenv.OneVM{running(61, good, "10.0.0.61", "", time.Now().Unix()), running(62, wrong, "10.0.0.62", "", time.Now().Unix())}
	for i := range vms {
		vms[i].UserAttr = map[string]string{"PUPPET_CHALLENGE": "challenge-of-" + vms[i].Name}
		hook(t, in, spool, vms[i], "running", "VMGLUE_CHALLENGE_KEY_FILE="+keyFile)
	}
	for _, v := range vms {
		recorded(t, reg, fmt.Sprintf("one.%d", v.ID), v.Name+".cloud.test")
	}
	snaps, err := worker.OpenSnapshots(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	if vm, _, err := snaps.Get(context.Background(), "one.61"); err != nil || vm == nil ||
		!strings.HasPrefix(vm.Attributes["PUPPET_CHALLENGE"], eventbus.ChallengePrefix) {
		t.Fatalf("snapshot one.61: want the challenge as its MAC, got %+v %v", vm, err)
	}

	for _, tc := range []struct {
		name, certname, challenge, reason string
		signed                            bool
	}{
		{"right challenge", good + ".cloud.test", "challenge-of-" + good, "signed " + good + ".cloud.test: vm one.61 is running", true},
		{"wrong challenge", wrong + ".cloud.test", "challenge-of-" + good, "challengePassword does not match vm one.62's PUPPET_CHALLENGE", false},
		{"unknown certname", unknown + ".cloud.test", "challenge-of-" + good, "refused " + unknown + ".cloud.test: no VM known with this certname", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signed, _ := testenv.PuppetBootstrap(t, s, tc.certname, tc.challenge)
			want := "signed"
			if !tc.signed {
				want = "requested"
			}
			if st := a.CertState(tc.certname); signed != tc.signed || st != want {
				t.Fatalf("signed=%v, CA state %q; want signed=%v, state %q", signed, st, tc.signed, want)
			}
			testenv.WaitFor(t, 10*time.Second, "the policy's line in the server log", func() bool {
				return strings.Contains(s.ServerLogLines(tc.certname), tc.reason)
			})
		})
	}

	for _, v := range vms {
		hook(t, in, spool, done(v), "done")
	}
	for _, v := range vms {
		certname := v.Name + ".cloud.test"
		testenv.WaitFor(t, 20*time.Second, certname+" cleaned", func() bool { return a.CertState(certname) == "" })
	}
	if dl := deadLetters(t, js); len(dl) != 0 {
		t.Errorf("dead letters: %+v", dl)
	}
}

// The CA goes away while a VM's DONE event is being converged (a
// forwarder in front of it resets every connection): the runtime retries
// with backoff, nothing is dead-lettered, and once the CA is back the
// certificate is revoked and cleaned and the node deactivated.
func TestPuppetCADownRetriedUntilBack(t *testing.T) {
	s := testenv.Puppet(t)
	a := testenv.NewPuppetAdmin(t, s)
	name, certname, serial := bootedAgent(a, "cadown")

	fw := testenv.NewForwarder(t, strings.TrimPrefix(s.CAURL, "https://"))
	fw.Forward()
	via := *s
	via.CAURL = "https://" + fw.Addr
	in := start(t, puppetConfig(t, &via))
	_, js := in.connect(t)
	bind(t, a, js, certname, "71")
	reg, err := worker.OpenRegistry(context.Background(), js, "puppet")
	if err != nil {
		t.Fatal(err)
	}
	spool := t.TempDir()
	v := running(71, name, "10.0.0.71", "", time.Now().Unix())
	hook(t, in, spool, v, "running")
	recorded(t, reg, "one.71", certname)

	fw.Refuse()
	hook(t, in, spool, done(v), "done")
	testenv.WaitFor(t, 30*time.Second, "three attempts refused", func() bool { return fw.Refused() >= 3 })
	if st := a.CertState(certname); st != "signed" {
		t.Fatalf("certificate in state %q while the CA was away, want signed", st)
	}
	if dl := deadLetters(t, js); len(dl) != 0 {
		t.Fatalf("dead letters while the CA was away: %+v", dl)
	}
	t.Logf("%d connections refused; the CA comes back", fw.Refused())

	t0 := time.Now()
	fw.Forward()
	cleaned(t, a, js, reg, "one.71", certname, serial)
	t.Logf("CA back → certificate cleaned and node deactivated: %s", time.Since(t0).Round(time.Millisecond))
	if dl := deadLetters(t, js); len(dl) != 0 {
		t.Errorf("dead letters: %+v", dl)
	}
}
