package puppet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
)

// mapLookup is an in-memory Lookup: certname → VM.
type mapLookup map[string]*eventbus.VM

func (m mapLookup) VMByCertname(_ context.Context, certname string) (*eventbus.VM, error) {
	return m[certname], nil
}

// testKey is the challenge key of the unit tests.
var testKey = []byte("unit-test-challenge-key-0123456789")

// withMAC returns vm with its PUPPET_CHALLENGE as the hook sends it.
func withMAC(vm *eventbus.VM) *eventbus.VM {
	if c := vm.Attributes["PUPPET_CHALLENGE"]; c != "" {
		vm.Attributes["PUPPET_CHALLENGE"] = eventbus.ChallengeMAC(testKey, vm.Cloud, vm.ID, c)
	}
	return vm
}

// memBinder is an in-memory Binder: certname → VM key; a certname bound
// to another VM is held (the unit tests have no snapshots to ask).
type memBinder map[string]string

func (m memBinder) Bind(_ context.Context, certname string, vm *eventbus.VM, _ string) error {
	if k, ok := m[certname]; ok && k != vm.Key() {
		return fmt.Errorf("%w: vm %s", ErrHeld, k)
	}
	m[certname] = vm.Key()
	return nil
}

type failingBinder struct{}

func (failingBinder) Bind(context.Context, string, *eventbus.VM, string) error {
	return errors.New("nats: timeout")
}

// policy is a Policy over lookup with a fresh memBinder and testKey.
func policy(lookup Lookup, cfg AutosignConfig) Policy {
	return Policy{Lookup: lookup, Binder: memBinder{}, Config: cfg, ChallengeKey: testKey}
}

type failingLookup struct{}

func (failingLookup) VMByCertname(context.Context, string) (*eventbus.VM, error) {
	return nil, errors.New("nats: connection closed")
}

// autosignHelper is this binary run by Puppet Server as its autosign
// policy: the VMs come from a JSON file (certname → VM).
func autosignHelper(vmsFile string) int {
	b, err := os.ReadFile(vmsFile)
	var vms mapLookup
	if err == nil {
		err = json.Unmarshal(b, &vms)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "refused: read %s: %v\n", vmsFile, err)
		return ExitError
	}
	cfg := AutosignConfig{RequireChallenge: true, ChallengeAttribute: "PUPPET_CHALLENGE"}
	return Main(context.Background(), os.Args[1:], os.Stdin, os.Stderr, policy(vms, cfg))
}

// agentCSR is one real CSR made by `puppet ssl bootstrap` (refused by the
// stack's default policy), with challengePassword "s3cret".
var agentCSR struct {
	once     sync.Once
	certname string
	pem      []byte
}

func realCSR(t *testing.T) (string, []byte) {
	s := testenv.Puppet(t)
	agentCSR.once.Do(func() {
		agentCSR.certname = uniq("csr") + ".cloud.test"
		signed, csr := bootstrap(t, s, agentCSR.certname, "s3cret")
		if signed {
			t.Fatalf("default policy signed %s", agentCSR.certname)
		}
		agentCSR.pem = csr
	})
	if agentCSR.pem == nil {
		t.Fatal("no agent CSR")
	}
	return agentCSR.certname, agentCSR.pem
}

func TestAutosign(t *testing.T) {
	certname, csr := realCSR(t)
	// vm is the VM as the hook publishes it: the challenge as its MAC.
	vm := func(kind, challenge string) mapLookup {
		return mapLookup{certname: withMAC(fakeVM(strings.TrimSuffix(certname, ".cloud.test"), kind,
			map[string]string{"PUPPET_CHALLENGE": challenge}))}
	}
	// clear is the VM with its challenge in clear text, as no hook sends it.
	clear := func(kind, challenge string) mapLookup {
		return mapLookup{certname: fakeVM(strings.TrimSuffix(certname, ".cloud.test"), kind,
			map[string]string{"PUPPET_CHALLENGE": challenge})}
	}
	strict := AutosignConfig{RequireChallenge: true, ChallengeAttribute: "PUPPET_CHALLENGE"}
	noKey := policy(vm(eventbus.KindRunning, "s3cret"), strict)
	noKey.ChallengeKey, noKey.KeyErr = nil, fmt.Errorf("%w: open /etc/vmglue/challenge.key: no such file or directory", eventbus.ErrNoChallengeKey)
	otherKey := policy(vm(eventbus.KindRunning, "s3cret"), strict)
	otherKey.ChallengeKey = []byte("another-challenge-key-0123456789ab")
	held := policy(vm(eventbus.KindRunning, "s3cret"), strict)
	held.Binder = memBinder{certname: "one.id-victim"}
	brokenBinder := policy(vm(eventbus.KindRunning, "s3cret"), strict)
	brokenBinder.Binder = failingBinder{}
	tests := []struct {
		name     string
		certname string
		csr      []byte
		policy   Policy
		sign     bool
		reason   string
		err      bool
	}{
		{"running vm, right challenge", certname, csr, policy(vm(eventbus.KindRunning, "s3cret"), strict), true, "signed", false},
		{"starting (booting) vm, no challenge required", certname, csr, policy(vm(eventbus.KindStarting, ""), AutosignConfig{}), true, "signed", false},
		{"migrating vm", certname, csr, policy(vm(eventbus.KindMigrating, "s3cret"), strict), true, "signed", false},
		{"changing vm", certname, csr, policy(vm(eventbus.KindChanging, "s3cret"), strict), true, "signed", false},
		{"wrong challenge", certname, csr, policy(vm(eventbus.KindRunning, "other"), strict), false, "challengePassword does not match", false},
		{"challenge MAC of another key", certname, csr, otherKey, false, "challengePassword does not match", false},
		{"challenge in clear text (no hook sends it)", certname, csr, policy(clear(eventbus.KindRunning, "s3cret"), strict), false, "is not a keyed MAC", false},
		{"redacted challenge", certname, csr, policy(clear(eventbus.KindRunning, eventbus.RedactedValue), strict), false, "is not a keyed MAC", false},
		{"no challenge key", certname, csr, noKey, false, "require_challenge without a challenge key", true},
		{"vm without challenge attribute", certname, csr, policy(vm(eventbus.KindRunning, ""), strict), false, "has no PUPPET_CHALLENGE", false},
		{"unknown certname", certname, csr, policy(mapLookup{}, strict), false, "no VM known", false},
		{"never booted (created: PENDING)", certname, csr, policy(vm(eventbus.KindCreated, "s3cret"), strict), false, "is created (autosign signs only a VM that is booting or booted)", false},
		{"never booted, no challenge required", certname, csr, policy(vm(eventbus.KindCreated, ""), AutosignConfig{}), false, "is created", false},
		{"deleted vm", certname, csr, policy(vm(eventbus.KindDeleted, "s3cret"), strict), false, "is deleted", false},
		{"stopped vm", certname, csr, policy(vm(eventbus.KindStopped, "s3cret"), strict), false, "is stopped", false},
		{"stopping vm", certname, csr, policy(vm(eventbus.KindStopping, "s3cret"), strict), false, "is stopping", false},
		{"certname held by another live vm", certname, csr, held, false, "certname held by another live VM: vm one.id-victim", false},
		{"binding fails", certname, csr, brokenBinder, false, "binding to vm", true},
		{"lookup fails", certname, csr, policy(failingLookup{}, strict), false, "lookup failed", true},
		{"csr of another name", "other.cloud.test", csr, policy(mapLookup{"other.cloud.test": fakeVM("other", eventbus.KindRunning, nil)}, AutosignConfig{}), false, "does not match the certname", false},
		{"garbage", certname, []byte("hello"), policy(vm(eventbus.KindRunning, "s3cret"), strict), false, "no PEM", false},
		{"invalid certname", "Evil\nName", csr, policy(mapLookup{}, strict), false, "not a valid certname", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Autosign(context.Background(), tc.certname, tc.csr, tc.policy)
			if (err != nil) != tc.err || d.Sign != tc.sign || !strings.Contains(d.Reason, tc.reason) {
				t.Fatalf("got %+v, %v; want sign=%v reason ~%q err=%v", d, err, tc.sign, tc.reason, tc.err)
			}
			if strings.Contains(d.Reason, "\n") || (err != nil && strings.Contains(err.Error(), "s3cret")) || strings.Contains(d.Reason, "s3cret") {
				t.Fatalf("reason must be one line without the secret: %q", d.Reason)
			}
		})
	}
}

// TestAutosignOpenSSLChallenge covers the string types openssl writes: a
// PrintableString for ASCII, a UTF8String with -utf8.
func TestAutosignOpenSSLChallenge(t *testing.T) {
	testenv.Need(t, "openssl")
	cfg := AutosignConfig{RequireChallenge: true, ChallengeAttribute: "PUPPET_CHALLENGE"}
	for _, tc := range []struct{ name, challenge, flag string }{
		{"printable", "Ascii-Challenge 42", ""},
		{"utf8", "utf8-ch\u00e4llenge", "-utf8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cnf := "[req]\nprompt=no\ndistinguished_name=dn\nattributes=at\n[dn]\nCN=vm9.cloud.test\n[at]\nchallengePassword=" + tc.challenge + "\n"
			if err := os.WriteFile(filepath.Join(dir, "req.cnf"), []byte(cnf), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/k.pem", "-config", dir + "/req.cnf"}
			if tc.flag != "" {
				args = append(args, tc.flag)
			}
			out, err := exec.Command("openssl", args...).Output()
			if err != nil {
				t.Fatalf("openssl req: %v", err)
			}
			for _, c := range []struct {
				want string
				sign bool
			}{{tc.challenge, true}, {tc.challenge + "x", false}} {
				lookup := mapLookup{"vm9.cloud.test": withMAC(fakeVM("vm9", eventbus.KindRunning, map[string]string{"PUPPET_CHALLENGE": c.want}))}
				if d, err := Autosign(context.Background(), "vm9.cloud.test", out, policy(lookup, cfg)); d.Sign != c.sign || err != nil {
					t.Errorf("vm challenge %q: got %+v %v, want sign=%v", c.want, d, err, c.sign)
				}
			}
		})
	}
}

func TestMainExitCodes(t *testing.T) {
	certname, csr := realCSR(t)
	lookup := mapLookup{certname: withMAC(fakeVM("x", eventbus.KindRunning, map[string]string{"PUPPET_CHALLENGE": "s3cret"}))}
	cfg := AutosignConfig{RequireChallenge: true, ChallengeAttribute: "PUPPET_CHALLENGE"}
	tests := []struct {
		name   string
		args   []string
		stdin  io.Reader
		lookup Lookup
		code   int
	}{
		{"sign", []string{certname}, bytes.NewReader(csr), lookup, ExitSign},
		{"refuse", []string{"nobody.cloud.test"}, bytes.NewReader(csr), lookup, ExitRefuse},
		{"lookup error", []string{certname}, bytes.NewReader(csr), failingLookup{}, ExitError},
		{"usage", nil, bytes.NewReader(csr), lookup, ExitError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := Main(context.Background(), tc.args, tc.stdin, &stderr, policy(tc.lookup, cfg)); code != tc.code {
				t.Fatalf("exit %d, want %d (%s)", code, tc.code, stderr.String())
			}
			if lines := strings.Count(stderr.String(), "\n"); lines != 1 {
				t.Fatalf("want one stderr line, got %q", stderr.String())
			}
		})
	}
}

// TestAutosignEndToEnd makes Puppet Server run this test binary as its
// autosign policy and boots real agents against it.
func TestAutosignEndToEnd(t *testing.T) {
	s := testenv.Puppet(t)
	a := testenv.NewPuppetAdmin(t, s)
	name := uniq("boot")
	altName := uniq("alt")
	certname, evil, alt := name+".cloud.test", uniq("evil")+".cloud.test", altName+".cloud.test"
	vms, _ := json.Marshal(mapLookup{
		certname: withMAC(fakeVM(name, eventbus.KindStarting, map[string]string{"PUPPET_CHALLENGE": "boot-secret"})),
		evil:     withMAC(fakeVM("evil", eventbus.KindRunning, map[string]string{"PUPPET_CHALLENGE": "right"})),
		alt:      withMAC(fakeVM(altName, eventbus.KindRunning, map[string]string{"PUPPET_CHALLENGE": "alt-secret"})),
	})
	installHelper(t, s, "VMGLUE_AUTOSIGN_HELPER_VMS=DIR/vms.json", map[string][]byte{"vms.json": vms})

	// A live VM with the right challenge that asks for the CA's own name
	// as an alternative name (the stack's CA allows alt names).
	if signed, _ := bootstrap(t, s, alt, "alt-secret", "--dns_alt_names", "puppet"); signed || a.CertState(alt) != "requested" {
		t.Fatalf("%s with DNS:puppet: signed=%v state=%q, want a pending request", alt, signed, a.CertState(alt))
	}
	testenv.WaitFor(t, 10*time.Second, "the refusal's reason for "+alt+" in the server log", func() bool {
		return strings.Contains(s.ServerLogLines(alt), "subject alternative name DNS:puppet")
	})
	if signed, _ := bootstrap(t, s, certname, "boot-secret"); !signed {
		t.Fatalf("%s not signed by the policy (see %s)", certname, s.ServerLog)
	}
	serial := a.CertSerial(certname)
	if signed, _ := bootstrap(t, s, evil, "wrong"); signed || a.CertState(evil) != "requested" {
		t.Fatalf("%s: wrong challenge signed=%v state=%q, want a pending request", evil, signed, a.CertState(evil))
	}

	// The VM is deleted, a new one with the same name boots.
	tg := newTarget(t, testConfig(s))
	for _, n := range []string{certname, evil, alt} {
		vm := fakeVM(strings.TrimSuffix(n, ".cloud.test"), eventbus.KindDeleted, nil)
		if out, err := converge(t, tg, vm, map[string]string{"cert " + n: "", "node " + n: ""}); err != nil || len(out) != 0 {
			t.Fatalf("delete %s: %v %v", n, out, err)
		}
	}
	if !a.Revoked(serial) || a.CertState(evil) != "" || a.CertState(alt) != "" {
		t.Fatalf("after delete: serial revoked %v, %s state %q", a.Revoked(serial), evil, a.CertState(evil))
	}
	if signed, _ := bootstrap(t, s, certname, "boot-secret"); !signed {
		t.Fatalf("the successor of %s was not signed", certname)
	}
	vm := fakeVM(name, eventbus.KindDeleted, nil)
	if _, err := converge(t, tg, vm, map[string]string{"cert " + certname: ""}); err != nil {
		t.Fatalf("final clean: %v", err)
	}
}
