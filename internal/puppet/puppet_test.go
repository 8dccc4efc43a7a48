package puppet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// converge runs one Desired + Apply round like the runtime does.
func converge(t *testing.T, tg *Target, vm *eventbus.VM, have worker.Objects) (worker.Objects, error) {
	t.Helper()
	want, err := tg.Desired(vm)
	if err != nil {
		t.Fatalf("desired: %v", err)
	}
	start := time.Now()
	out, err := tg.Apply(context.Background(), worker.Request{VM: vm, Have: have, Want: want})
	t.Logf("apply %s (%d→%d objects): %s, err=%v", vm.Kind, len(have), len(want), time.Since(start).Round(time.Millisecond), err)
	return out, err
}

func TestApplyDeleteCleansCertificateAndDeactivatesNode(t *testing.T) {
	s := testenv.Puppet(t)
	a := testenv.NewPuppetAdmin(t, s)
	vm := fakeVM(uniq("web"), eventbus.KindRunning, nil)
	name := vm.Name + ".cloud.test"
	foreign := uniq("foreign") + ".cloud.test"
	serial := a.SignedCert(name)
	a.SignedCert(foreign)
	a.ReplaceFacts(name)
	a.ReplaceFacts(foreign)

	// Creates only record ownership: with both servers "down" Apply works.
	cfg := testConfig(s)
	down := cfg
	down.CAURL, down.PuppetDBURL = closedURL(t), closedURL(t)
	have, err := converge(t, newTarget(t, down), vm, nil)
	if err != nil || !maps.Equal(have, worker.Objects{"cert " + name: "", "node " + name: ""}) {
		t.Fatalf("create: %v %v", have, err)
	}
	if again, err := converge(t, newTarget(t, down), vm, have); err != nil || !maps.Equal(again, have) {
		t.Fatalf("apply twice: %v %v", again, err)
	}

	tg := newTarget(t, cfg)
	vm.Kind = eventbus.KindDeleted
	out, err := converge(t, tg, vm, have)
	if err != nil || len(out) != 0 {
		t.Fatalf("delete: %v %v", out, err)
	}
	if st := a.CertState(name); st != "" {
		t.Errorf("certificate %s still in state %q", name, st)
	}
	if !a.Revoked(serial) {
		t.Errorf("crl does not list serial %s of %s", serial, name)
	}
	if a.NodeDeactivated(name) == nil {
		t.Errorf("node %s not deactivated in puppetdb", name)
	}
	// Foreign objects (not in have) are untouched.
	if st := a.CertState(foreign); st != "signed" {
		t.Errorf("foreign certificate %s: state %q, want signed", foreign, st)
	}
	if d := a.NodeDeactivated(foreign); d != nil {
		t.Errorf("foreign node %s deactivated at %v", foreign, d)
	}
	// The name is free again: a new VM's CSR is accepted and signed.
	if newSerial := a.SignedCert(name); newSerial.Cmp(serial) == 0 {
		t.Errorf("re-signed %s with the old serial", name)
	}
	// Replay of the delete: nothing in have, nothing to do, no calls.
	if out, err := converge(t, newTarget(t, down), vm, out); err != nil || len(out) != 0 {
		t.Fatalf("replayed delete: %v %v", out, err)
	}
}

// With the CA down the certificate waits for a retry. Its node waits too
// while verify_cert_age is on (the certificate, and so the certname, might
// be another host's); without the check the node is deactivated at once.
func TestApplyDeleteCADownIsTransientThenConverges(t *testing.T) {
	s := testenv.Puppet(t)
	off := false
	for _, tc := range []struct {
		name      string
		verify    *bool
		nodeWaits bool
		firstLeft func(certname string) worker.Objects
	}{
		{"certificate checked (default)", nil, true, func(n string) worker.Objects {
			return worker.Objects{"cert " + n: "", "node " + n: ""}
		}},
		{"verify_cert_age off", &off, false, func(n string) worker.Objects { return worker.Objects{"cert " + n: ""} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := testenv.NewPuppetAdmin(t, s)
			vm := fakeVM(uniq("db"), eventbus.KindDeleted, nil)
			name := vm.Name + ".cloud.test"
			serial := a.SignedCert(name)
			a.ReplaceFacts(name)
			have := worker.Objects{"cert " + name: "", "node " + name: ""}

			cfg := testConfig(s)
			cfg.CAURL = closedURL(t)
			cfg.VerifyCertAge = tc.verify
			out, err := converge(t, newTarget(t, cfg), vm, have)
			if err == nil || worker.IsPermanent(err) {
				t.Fatalf("ca down: want a transient error, got %v", err)
			}
			if !strings.Contains(err.Error(), "ca 127.0.0.1:") || !strings.Contains(err.Error(), "unreachable") {
				t.Errorf("error does not say the ca is unreachable: %v", err)
			}
			if want := tc.firstLeft(name); !maps.Equal(out, want) {
				t.Fatalf("partial result: %v, want %v", out, want)
			}
			if st, d := a.CertState(name), a.NodeDeactivated(name); st != "signed" || (d == nil) != tc.nodeWaits {
				t.Fatalf("after the first try: cert %q, node deactivated at %v, want deactivated=%v", st, d, !tc.nodeWaits)
			}
			cfg.CAURL = s.CAURL
			out, err = converge(t, newTarget(t, cfg), vm, out)
			if err != nil || len(out) != 0 {
				t.Fatalf("retry: %v %v", out, err)
			}
			if a.CertState(name) != "" || !a.Revoked(serial) || a.NodeDeactivated(name) == nil {
				t.Errorf("after retry: cert %q, revoked %v, node deactivated %v", a.CertState(name), a.Revoked(serial), a.NodeDeactivated(name))
			}
		})
	}
}

// A worker certificate that auth.conf and the PuppetDB allowlist refuse is
// a permanent failure with a hint. With verify_cert_age on, the refused
// certificate check also keeps PuppetDB from being asked.
func TestApplyDeleteForbiddenIsPermanent(t *testing.T) {
	s := testenv.Puppet(t)
	off := false
	for _, tc := range []struct {
		name   string
		verify *bool
		want   []string
		not    []string
	}{
		{"certificate checked (default)", nil, []string{"ca 127.0.0.1", "403", "auth.conf"}, []string{"puppetdb"}},
		{"verify_cert_age off", &off, []string{"ca 127.0.0.1", "403", "puppetdb 127.0.0.1"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := testenv.NewPuppetAdmin(t, s)
			vm := fakeVM(uniq("app"), eventbus.KindDeleted, nil)
			name := vm.Name + ".cloud.test"
			a.SignedCert(name)
			a.ReplaceFacts(name)
			cfg := testConfig(s)
			cfg.TLS.CertFile, cfg.TLS.KeyFile = s.IntruderCertFile, s.IntruderKeyFile
			cfg.VerifyCertAge = tc.verify
			have := worker.Objects{"cert " + name: "", "node " + name: ""}
			out, err := converge(t, newTarget(t, cfg), vm, have)
			if err == nil || !worker.IsPermanent(err) {
				t.Fatalf("cert not allowed: want a permanent error, got %v", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			for _, not := range tc.not {
				if strings.Contains(err.Error(), not) {
					t.Errorf("error has %q: %v", not, err)
				}
			}
			if !maps.Equal(out, have) {
				t.Errorf("nothing was done, yet have became %v", out)
			}
			if a.CertState(name) != "signed" || a.NodeDeactivated(name) != nil {
				t.Errorf("changed by a forbidden client: certificate %q, node deactivated at %v", a.CertState(name), a.NodeDeactivated(name))
			}
		})
	}
}

func TestApplyDeleteDiscardsPendingRequest(t *testing.T) {
	s := testenv.Puppet(t)
	a := testenv.NewPuppetAdmin(t, s)
	vm := fakeVM(uniq("pending"), eventbus.KindDeleted, nil)
	name := vm.Name + ".cloud.test"
	a.SubmitCSR(name) // the default autosign policy refuses: it stays pending
	if st := a.CertState(name); st != "requested" {
		t.Fatalf("csr state %q, want requested", st)
	}
	out, err := converge(t, newTarget(t, testConfig(s)), vm, worker.Objects{"cert " + name: ""})
	if err != nil || len(out) != 0 {
		t.Fatalf("delete: %v %v", out, err)
	}
	if st := a.CertState(name); st != "" {
		t.Errorf("pending request still in state %q", st)
	}
	// Never signed, never requested: cleaning again is a no-op.
	if out, err := converge(t, newTarget(t, testConfig(s)), vm, worker.Objects{"cert " + name: ""}); err != nil || len(out) != 0 {
		t.Fatalf("clean unknown certname: %v %v", out, err)
	}
}

func TestApplyCheckAccess(t *testing.T) {
	s := testenv.Puppet(t)
	vm := fakeVM(uniq("chk"), eventbus.KindRunning, nil)
	cfg := testConfig(s)
	cfg.OnRunning.CheckAccess = true
	if out, err := converge(t, newTarget(t, cfg), vm, nil); err != nil || len(out) != 2 {
		t.Fatalf("allowed worker: %v %v", out, err)
	}
	cfg.TLS.CertFile, cfg.TLS.KeyFile = s.IntruderCertFile, s.IntruderKeyFile
	out, err := converge(t, newTarget(t, cfg), vm, nil)
	if !worker.IsPermanent(err) || len(out) != 0 {
		t.Fatalf("forbidden worker: want permanent error and nothing recorded, got %v %v", out, err)
	}
}

func TestApplyRejectsForeignKeys(t *testing.T) {
	tg := newTarget(t, testConfig(testenv.Puppet(t)))
	vm := fakeVM("x", eventbus.KindDeleted, nil)
	for _, key := range []string{"cert ../../etc", "dns web1", "node UPPER.cloud.test"} {
		_, err := tg.Apply(context.Background(), worker.Request{VM: vm, Have: worker.Objects{key: ""}, Want: worker.Objects{}})
		if !worker.IsPermanent(err) {
			t.Errorf("key %q: want permanent error, got %v", key, err)
		}
	}
}

// A certificate the CA issued before the VM existed is another host's (an
// infrastructure host, an earlier machine with the same name): the VM's
// delete leaves it signed and its node active, and is a Permanent
// ErrConflict naming the certname and both times. Everything the VM can
// have caused (a certificate signed after it was created, within the skew,
// its agent's pending CSR) is cleaned as before.
func TestApplyDeleteVerifiesCertificateAge(t *testing.T) {
	s := testenv.Puppet(t)
	a := testenv.NewPuppetAdmin(t, s)
	off := false
	later := func(d time.Duration) *time.Time { c := time.Now().UTC().Add(d); return &c }
	tests := []struct {
		name     string
		created  *time.Time // the VM's creation time, taken after the certificate is signed
		ended    *time.Time // the VM's end time (nil: unknown)
		verify   *bool
		arrange  func(certname string)
		conflict bool
	}{
		{"vm created an hour after the certificate", later(time.Hour), nil, nil, signed(a), true},
		{"vm created after the certificate, beyond the skew", later(DefaultOwnershipSkew + time.Minute), nil, nil, signed(a), true},
		{"vm created after the certificate, within the skew", later(DefaultOwnershipSkew - time.Minute), nil, nil, signed(a), false},
		{"vm created before the certificate", later(-time.Minute), nil, nil, signed(a), false},
		{"creation time unknown", nil, nil, nil, signed(a), false},
		{"check disabled", later(time.Hour), nil, &off, signed(a), false},
		{"pending request of the vm's agent", later(time.Hour), nil, nil, func(n string) { a.SubmitCSR(n) }, false},
		{"certificate already gone", later(time.Hour), nil, nil, func(string) {}, false},
		{"vm ended an hour before the certificate (a successor's)", later(-2 * time.Hour), later(-time.Hour), nil, signed(a), true},
		{"vm ended before the certificate, beyond the skew", later(-time.Hour), later(-DefaultOwnershipSkew - time.Minute), nil, signed(a), true},
		{"vm ended before the certificate, within the skew", later(-time.Hour), later(-DefaultOwnershipSkew + time.Minute), nil, signed(a), false},
		{"vm ended after the certificate", later(-time.Hour), later(time.Minute), nil, signed(a), false},
		{"creation time unknown, ended before the certificate", nil, later(-time.Hour), nil, signed(a), true},
		{"successor check disabled", later(-2 * time.Hour), later(-time.Hour), &off, signed(a), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := testenv.NewPuppetAdmin(t, s)
			vm := fakeVM(uniq("age"), eventbus.KindDeleted, nil)
			name := vm.Name + ".cloud.test"
			tc.arrange(name)
			a.ReplaceFacts(name)
			vm.Times.Created, vm.Times.Ended = tc.created, tc.ended
			before := a.CertState(name)
			cfg := testConfig(s)
			cfg.VerifyCertAge = tc.verify
			have := worker.Objects{"cert " + name: "", "node " + name: ""}
			out, err := converge(t, newTarget(t, cfg), vm, have)
			if !tc.conflict {
				if err != nil || len(out) != 0 {
					t.Fatalf("delete: %v %v", out, err)
				}
				if st := a.CertState(name); st != "" {
					t.Errorf("certificate %s still in state %q", name, st)
				}
				// The deactivation carries the VM's end time: PuppetDB keeps
				// a node whose facts came later (a successor's run).
				factsLater := tc.ended != nil && tc.ended.Before(time.Now())
				if d := a.NodeDeactivated(name); (d == nil) != factsLater {
					t.Errorf("node %s deactivated at %v, want deactivated=%v", name, d, !factsLater)
				}
				return
			}
			if !worker.IsPermanent(err) || !errors.Is(err, worker.ErrConflict) {
				t.Fatalf("want a permanent conflict, got %v", err)
			}
			bound := tc.created // the time the conflict is measured against
			if tc.ended != nil {
				bound = tc.ended
			}
			for _, want := range []string{name, bound.Format(time.RFC3339), "issued at " + time.Now().UTC().Format("2006-01-02T")} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			if !maps.Equal(out, have) {
				t.Errorf("have became %v, want it unchanged", out)
			}
			if st := a.CertState(name); st != before || st != "signed" {
				t.Errorf("certificate %s in state %q, want signed", name, st)
			}
			if a.Revoked(a.CertSerial(name)) {
				t.Errorf("certificate %s revoked", name)
			}
			if d := a.NodeDeactivated(name); d != nil {
				t.Errorf("node %s deactivated at %v", name, d)
			}
		})
	}
}

// signed arranges a certificate signed now.
func signed(a *testenv.PuppetAdmin) func(string) {
	return func(certname string) { a.SignedCert(certname) }
}

// The CA's not_before is the signing time minus one day (caBackdate):
// issued() gives back the signing time.
func TestCertStatusIssuedIsSigningTime(t *testing.T) {
	s := testenv.Puppet(t)
	a := testenv.NewPuppetAdmin(t, s)
	name := uniq("issued") + ".cloud.test"
	t0 := time.Now().Truncate(time.Second)
	a.SignedCert(name)
	t1 := time.Now()
	st, found, err := newTarget(t, testConfig(s)).ca.certStatus(context.Background(), name)
	if err != nil || !found {
		t.Fatalf("certificate status: %v found=%v", err, found)
	}
	issued, err := st.issued()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("not_before %s → issued %s (signed between %s and %s)", st.NotBefore, issued, t0.UTC(), t1.UTC())
	if issued.Before(t0.Add(-2*time.Second)) || issued.After(t1.Add(2*time.Second)) {
		t.Errorf("issued %s, want between %s and %s", issued, t0, t1)
	}
}

func TestCertStatusIssued(t *testing.T) {
	tests := []struct {
		notBefore string
		want      time.Time // zero: an error
	}{
		{"2026-11-21T05:29:24UTC", time.Date(2026, 11, 22, 5, 29, 24, 0, time.UTC)},
		{"2026-11-21T06:29:24+01:00", time.Date(2026, 11, 22, 5, 29, 24, 0, time.UTC)},
		{"", time.Time{}},
		{"yesterday", time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.notBefore, func(t *testing.T) {
			got, err := certStatus{Name: "web1.cloud.test", State: "signed", NotBefore: tc.notBefore}.issued()
			if (err != nil) != tc.want.IsZero() || !got.Equal(tc.want) {
				t.Fatalf("issued() = %s, %v; want %s", got, err, tc.want)
			}
		})
	}
}

// A burst of deleted VMs cleans their certificates concurrently: every
// serial must end up in the CRL. (Puppet Server 7.9's PUT /clean rewrites
// the CRL without its lock and loses revocations under exactly this load.)
func TestConcurrentDeletesAllRevoked(t *testing.T) {
	s := testenv.Puppet(t)
	a := testenv.NewPuppetAdmin(t, s)
	tg := newTarget(t, testConfig(s))
	const n = 16
	vms := make([]*eventbus.VM, n)
	serials := make([]*big.Int, n)
	for i := range vms {
		vms[i] = fakeVM(uniq(fmt.Sprintf("burst%d", i)), eventbus.KindDeleted, nil)
		serials[i] = a.SignedCert(vms[i].Name + ".cloud.test")
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, vm := range vms {
		wg.Go(func() {
			name := vm.Name + ".cloud.test"
			have := worker.Objects{"cert " + name: ""}
			want, _ := tg.Desired(vm)
			_, errs[i] = tg.Apply(context.Background(), worker.Request{VM: vm, Have: have, Want: want})
		})
	}
	wg.Wait()
	for i, vm := range vms {
		name := vm.Name + ".cloud.test"
		if errs[i] != nil {
			t.Errorf("delete %s: %v", name, errs[i])
		}
		if st := a.CertState(name); st != "" {
			t.Errorf("%s still in state %q", name, st)
		}
		if !a.Revoked(serials[i]) {
			t.Errorf("serial %s of %s missing from the CRL", serials[i], name)
		}
	}
}
