package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/cli"
	"github.com/vmglue/vmglue/internal/ops"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// replayVM runs `vmglue replay --vm id` against serve's NATS and fails the
// test unless it exits 0.
func replayVM(t *testing.T, in *instance, id string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := cli.Execute(context.Background(), []string{"replay", "--vm", id, "-s", in.roleURL(t, eventbus.RoleOps)}, &out, &errb); code != 0 {
		t.Fatalf("replay --vm %s: exit %d: %s%s", id, code, out.String(), errb.String())
	}
}

// The bug of issue 12: a record vmglue made is deleted by hand with
// nsupdate; `vmglue replay --vm` brings it back (a replayed event is
// converged with verification): a lone A RRset deleted, then changed to
// another address, then the whole name with its marker and the PTR.
func TestDNSReplayRepairsDrift(t *testing.T) { eachDNS(t, testDNSReplayRepairsDrift) }

func testDNSReplayRepairsDrift(t *testing.T, b *testenv.DNS) {
	cfg := dnsConfig(t, b, "")
	cfg.Metrics.Listen = "127.0.0.1:0"
	in := start(t, cfg)
	_, js := in.connect(t)
	const name, rev = "web33.cloud.test.", "33.0.0.10.in-addr.arpa."
	hook(t, in, t.TempDir(), running(33, "web33", "10.0.0.33", "", time.Now().Unix()), "running")
	testenv.WaitFor(t, 20*time.Second, "A record", resolves(t, b, name, mdns.TypeA, "10.0.0.33"))
	testenv.WaitFor(t, 5*time.Second, "PTR record", resolves(t, b, rev, mdns.TypePTR, name))
	idle(t, js, "dns")
	marker := b.Lookup(t, name, mdns.TypeTXT)

	b.DeleteByHand(t, name, "A")
	if got := b.Lookup(t, name, mdns.TypeA); len(got) != 0 {
		t.Fatalf("A still there after the delete by hand: %v", got)
	}
	replayVM(t, in, "33")
	testenv.WaitFor(t, 20*time.Second, "A record back after replay", resolves(t, b, name, mdns.TypeA, "10.0.0.33"))
	idle(t, js, "dns") // the copies replayed with it: each a verified noop now

	b.DeleteByHand(t, name, "A")
	b.AddForeign(t, name+" 60 A 10.9.9.33") // changed by hand, under vmglue's marker
	replayVM(t, in, "33")
	testenv.WaitFor(t, 20*time.Second, "A put back after replay", func() bool {
		return slices.Equal(b.Lookup(t, name, mdns.TypeA), []string{"10.0.0.33"})
	})
	idle(t, js, "dns")

	b.DeleteByHand(t, name, "ANY")
	b.DeleteByHand(t, rev, "PTR")
	replayVM(t, in, "33")
	testenv.WaitFor(t, 20*time.Second, "A back after the name was deleted", resolves(t, b, name, mdns.TypeA, "10.0.0.33"))
	testenv.WaitFor(t, 5*time.Second, "PTR back", resolves(t, b, rev, mdns.TypePTR, name))
	if got := b.Lookup(t, name, mdns.TypeTXT); !slices.Equal(got, marker) {
		t.Errorf("marker after repair %v, want %v", got, marker)
	}
	awaitMetrics(t, in, `vmglue_worker_drift_repaired_total{worker="dns"} 5`,
		`vmglue_worker_drift_found_total{kind="missing",worker="dns"} 4`,
		`vmglue_worker_drift_found_total{kind="wrong",worker="dns"} 1`)
}

// A server vmglue added is removed by hand through the runtime API (as an
// operator would: disable, then del); `vmglue replay --vm` adds it back.
func TestLBReplayRepairsRemovedServer(t *testing.T) {
	s := startLB(t, 43)
	s.boot(t)
	_, js := s.in.connect(t)
	idle(t, js, "lb")
	s.h.Command("disable server " + s.server)
	s.h.Command("del server " + s.server)
	if st := s.state(t); st != "" {
		t.Fatalf("server still there after del server: %q", st)
	}
	replayVM(t, s.in, "43")
	testenv.WaitFor(t, 20*time.Second, "server back after replay", s.serves)
	awaitMetrics(t, s.in, `vmglue_worker_drift_repaired_total{worker="lb"} 1`,
		`vmglue_worker_drift_found_total{kind="missing",worker="lb"} 1`)
}

// A live VM's certificate is revoked by hand on the CA. `vmglue replay
// --vm` reads certificate_status back: the certificate stays revoked (it is
// not vmglue's to re-issue) and the replayed event is dead-lettered with
// reason "drift" naming it; the registry keeps it.
func TestPuppetReplayReportsRevokedCert(t *testing.T) {
	s := testenv.Puppet(t)
	a := testenv.NewPuppetAdmin(t, s)
	name, certname, _ := bootedAgent(a, "drift")
	in := start(t, puppetConfig(t, s))
	_, js := in.connect(t)
	bind(t, a, js, certname, "61")
	reg, err := worker.OpenRegistry(context.Background(), js, "puppet")
	if err != nil {
		t.Fatal(err)
	}
	hook(t, in, t.TempDir(), running(61, name, "10.0.0.61", "", time.Now().Unix()), "running")
	recorded(t, reg, "one.61", certname)
	idle(t, js, "puppet")

	a.Revoke(certname)
	replayVM(t, in, "61")
	var dl []worker.DeadLetter
	testenv.WaitFor(t, 20*time.Second, "drift dead letter", func() bool { dl = deadLetters(t, js); return len(dl) > 0 })
	if dl[0].Worker != "puppet" || dl[0].Reason != worker.ReasonDrift || !strings.Contains(dl[0].Error, "cert "+certname) {
		t.Fatalf("dead letter %+v, want reason %q naming cert %s", dl[0], worker.ReasonDrift, certname)
	}
	if st := a.CertState(certname); st != "revoked" {
		t.Errorf("certificate in state %q after replay, want revoked", st)
	}
	recorded(t, reg, "one.61", certname)
}

// With runtime.verify_interval set, serve's periodic verification finds a
// record deleted by hand and puts it back without any event or replay.
func TestDNSPeriodicVerificationRepairs(t *testing.T) {
	b := testenv.StartDNS(t, "bind", testenv.DNSOptions{})
	cfg := dnsConfig(t, b, "")
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Runtime.VerifyInterval = 300 * time.Millisecond
	in := start(t, cfg)
	const name = "web34.cloud.test."
	hook(t, in, t.TempDir(), running(34, "web34", "10.0.0.34", "", time.Now().Unix()), "running")
	testenv.WaitFor(t, 20*time.Second, "A record", resolves(t, b, name, mdns.TypeA, "10.0.0.34"))
	awaitMetrics(t, in, `vmglue_worker_verifications_total{worker="dns"}`)

	b.DeleteByHand(t, name, "A")
	testenv.WaitFor(t, 20*time.Second, "A back after a periodic verification", resolves(t, b, name, mdns.TypeA, "10.0.0.34"))
	awaitMetrics(t, in, `vmglue_worker_drift_repaired_total{worker="dns"} 1`)
}

// reconcileResult is the JSON `vmglue reconcile --json` prints.
type reconcileResult struct {
	Plans   []ops.VMPlan `json:"plans"`
	Checked int          `json:"checked"`
	Drifted int          `json:"drifted"`
	Errors  int          `json:"errors"`
	Applied int          `json:"applied"`
	NoEvent int          `json:"no_event"`
}

// reconcile runs `vmglue reconcile --json` with args and the config file
// cfgFile against serve's NATS.
func reconcile(t *testing.T, in *instance, cfgFile string, args ...string) reconcileResult {
	t.Helper()
	var out, errb bytes.Buffer
	args = append([]string{"reconcile", "--json", "-c", cfgFile, "-s", in.roleURL(t, eventbus.RoleOps)}, args...)
	if code := cli.Execute(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("%v: exit %d: %s%s", args, code, out.String(), errb.String())
	}
	var r reconcileResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("reconcile output %q: %v", out.String(), err)
	}
	return r
}

// findings returns the findings of the plan of vm ("one.35") as strings
// "kind key".
func (r reconcileResult) findings(vm string) []string {
	var out []string
	for _, p := range r.Plans {
		if p.Key() == vm {
			for _, f := range p.Findings {
				out = append(out, f.Kind+" "+f.Key)
			}
		}
	}
	return out
}

// On a real BIND: an A record deleted by hand is reported missing by
// `vmglue reconcile` (which changes nothing) and restored by --apply; a
// foreign record in the way of another VM is reported foreign and left
// untouched by --apply.
func TestReconcileDNS(t *testing.T) {
	b := testenv.StartDNS(t, "bind", testenv.DNSOptions{})
	b.AddForeign(t, "web36.cloud.test. 60 A 10.9.9.36")
	in := start(t, dnsConfig(t, b, ""))
	cfgFile := writeFile(t, "vmglue.yaml", "workers:\n  dns:\n"+indent(dnsWorkerYAML(b, "", "1s"), "    "))
	_, js := in.connect(t)
	spool := t.TempDir()
	now := time.Now().Unix()
	hook(t, in, spool, running(35, "web35", "10.0.0.35", "", now), "running")
	hook(t, in, spool, running(36, "web36", "10.0.0.36", "", now), "running")
	testenv.WaitFor(t, 20*time.Second, "A record", resolves(t, b, "web35.cloud.test.", mdns.TypeA, "10.0.0.35"))
	testenv.WaitFor(t, 20*time.Second, "conflict dead letter", func() bool { return len(deadLetters(t, js)) == 1 })
	idle(t, js, "dns")

	if r := reconcile(t, in, cfgFile); r.Drifted != 1 || !slices.Equal(r.findings("one.35"), nil) {
		t.Fatalf("before any drift: %+v, want only one.36 drifted", r)
	}
	b.DeleteByHand(t, "web35.cloud.test.", "A")
	r := reconcile(t, in, cfgFile)
	if got := r.findings("one.35"); !slices.Equal(got, []string{"missing A web35.cloud.test."}) {
		t.Errorf("findings of one.35: %v", got)
	}
	if got := r.findings("one.36"); !slices.Contains(got, "foreign A web36.cloud.test.") {
		t.Errorf("findings of one.36: %v, want the foreign A", got)
	}
	if r.Checked != 2 || r.Drifted != 2 || r.Applied != 0 {
		t.Errorf("summary %+v, want 2 checked, 2 drifted, none applied", r)
	}
	if got := b.Lookup(t, "web35.cloud.test.", mdns.TypeA); len(got) != 0 {
		t.Fatalf("reconcile without --apply changed the zone: A %v", got)
	}

	if r := reconcile(t, in, cfgFile, "--apply"); r.Applied != 2 {
		t.Fatalf("--apply: %+v, want 2 repairs requested", r)
	}
	testenv.WaitFor(t, 20*time.Second, "A back after reconcile --apply", resolves(t, b, "web35.cloud.test.", mdns.TypeA, "10.0.0.35"))
	testenv.WaitFor(t, 20*time.Second, "second conflict dead letter", func() bool { return len(deadLetters(t, js)) == 2 })
	idle(t, js, "dns")
	if got := b.Lookup(t, "web36.cloud.test.", mdns.TypeA); !slices.Equal(got, []string{"10.9.9.36"}) {
		t.Fatalf("foreign record changed by --apply: %v", got)
	}
	if dl := deadLetters(t, js); dl[1].Reason != worker.ReasonConflict || !strings.Contains(dl[1].Error, "web36") {
		t.Errorf("dead letter of the repair: %+v", dl[1])
	}
	if r := reconcile(t, in, cfgFile, "--vm", "35"); r.Checked != 1 || r.Drifted != 0 {
		t.Errorf("after --apply, vm 35: %+v, want in step", r)
	}
	// A drifted VM whose events aged out of the stream cannot be replayed:
	// --apply says so instead of counting it repaired.
	b.DeleteByHand(t, "web35.cloud.test.", "A")
	st, err := js.Stream(context.Background(), eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(context.Background(), jetstream.WithPurgeSubject(eventbus.SubjectPrefix+".one.35.>")); err != nil {
		t.Fatal(err)
	}
	if r := reconcile(t, in, cfgFile, "--vm", "35", "--apply"); r.Drifted != 1 || r.Applied != 0 || r.NoEvent != 1 {
		t.Errorf("--apply without a stored event: %+v, want 1 drifted, 0 applied, 1 without event", r)
	}

	var out, errb bytes.Buffer
	args := []string{"reconcile", "--vm", "36", "-c", cfgFile, "-s", in.roleURL(t, eventbus.RoleOps)}
	if code := cli.Execute(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, errb.String())
	}
	for _, want := range []string{"dns one.36: foreign A web36.cloud.test. (want \"10.0.0.36\", found \"records without a vmglue owner marker\")\n",
		"1 VM(s) checked: 1 with drift, 0 could not be checked; nothing changed (--apply repairs)\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("reconcile text output %q lacks %q", out.String(), want)
		}
	}
}
