package serve_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/cli"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// eachDNS runs test against each kind of DNS server (subtests bind, knot,
// pdns), each started afresh.
func eachDNS(t *testing.T, test func(t *testing.T, b *testenv.DNS)) {
	for _, kind := range testenv.DNSKinds {
		t.Run(kind, func(t *testing.T) { test(t, testenv.StartDNS(t, kind, testenv.DNSOptions{})) })
	}
}

// marker is the dns worker's ownership TXT value of VM vmKey under serve
// in (default owner_id).
func marker(in *instance, vmKey string) string {
	return "heritage=vmglue,vmglue/owner=vmglue,vmglue/installation=" + in.Info.Installation + ",vmglue/vm=" + vmKey
}

func resolves(t *testing.T, b *testenv.DNS, name string, qtype uint16, want string) func() bool {
	return func() bool { return slices.Contains(b.Lookup(t, name, qtype), want) }
}

func gone(t *testing.T, b *testenv.DNS, name string, qtype uint16) func() bool {
	return func() bool { return len(b.Lookup(t, name, qtype)) == 0 }
}

// The whole slice: HEM runs the hook, the event lands in JetStream, the dns
// worker converges the DNS server; DONE removes the records.
func TestDNSHookToRecords(t *testing.T) { eachDNS(t, testDNSHookToRecords) }

func testDNSHookToRecords(t *testing.T, b *testenv.DNS) {
	cfg := dnsConfig(t, b, "")
	cfg.Metrics.Listen = "127.0.0.1:0"
	// Compact a deleted VM as soon as the delete is applied everywhere.
	cfg.Runtime.CompactAfter, cfg.Runtime.CompactInterval = time.Millisecond, 50*time.Millisecond
	in := start(t, cfg)
	spool := t.TempDir()
	v := running(42, "web42", "10.0.0.42", "2001:db8::42", time.Now().Unix())

	hook(t, in, spool, v, "running")
	testenv.WaitFor(t, 20*time.Second, "A record", resolves(t, b, "web42.cloud.test.", mdns.TypeA, "10.0.0.42"))
	testenv.WaitFor(t, 5*time.Second, "AAAA record", resolves(t, b, "web42.cloud.test.", mdns.TypeAAAA, "2001:db8::42"))
	testenv.WaitFor(t, 5*time.Second, "PTR record", resolves(t, b, "42.0.0.10.in-addr.arpa.", mdns.TypePTR, "web42.cloud.test."))
	testenv.WaitFor(t, 5*time.Second, "IPv6 PTR", func() bool {
		rev, _ := mdns.ReverseAddr("2001:db8::42")
		return slices.Contains(b.Lookup(t, rev, mdns.TypePTR), "web42.cloud.test.")
	})

	// onehook retry of the same template: dropped as a duplicate.
	if out := hook(t, in, spool, v, "running"); !strings.Contains(out, "duplicate") {
		t.Errorf("second identical hook run: %q, want duplicate", out)
	}

	hook(t, in, spool, done(v), "done")
	testenv.WaitFor(t, 20*time.Second, "A gone", gone(t, b, "web42.cloud.test.", mdns.TypeA))
	testenv.WaitFor(t, 5*time.Second, "PTR gone", gone(t, b, "42.0.0.10.in-addr.arpa.", mdns.TypePTR))
	testenv.WaitFor(t, 5*time.Second, "TXT gone", gone(t, b, "web42.cloud.test.", mdns.TypeTXT))

	// serve compacts the deleted VM: tombstone kept, empty record removed.
	_, js := in.connect(t)
	snaps, err := worker.OpenSnapshots(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := worker.OpenRegistry(context.Background(), js, "dns")
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "deleted VM compacted", func() bool {
		snap, _, err := snaps.Get(context.Background(), "one.42")
		rec, _, rerr := reg.Get(context.Background(), "one.42")
		return err == nil && rerr == nil && snap != nil && snap.Deleted() && len(snap.NICs) == 0 && rec == nil
	})

	// The runner counts an event once it has settled it, just after the server
	// changed: wait for the counters rather than read them once.
	awaitMetrics(t, in, `vmglue_worker_events_total{result="ok",worker="dns"} 2`,
		`vmglue_worker_converge_seconds_count{worker="dns"}`, `vmglue_dns_update_messages_total{`)
}

// HEM runs hooks concurrently: DONE may arrive before RUNNING, and an old
// template may be retried after a newer one. Nothing is left behind.
func TestDNSOutOfOrder(t *testing.T) { eachDNS(t, testDNSOutOfOrder) }

func testDNSOutOfOrder(t *testing.T, b *testenv.DNS) {
	in := start(t, dnsConfig(t, b, ""))
	_, js := in.connect(t)
	spool := t.TempDir()
	t0 := time.Now().Unix()

	v := running(7, "late", "10.0.0.7", "", t0)
	hook(t, in, spool, done(v), "done")
	hook(t, in, spool, v, "running")
	idle(t, js, "dns")
	if got := b.Lookup(t, "late.cloud.test.", mdns.TypeA); len(got) != 0 {
		t.Fatalf("deleted VM revived by an older RUNNING: A %v", got)
	}

	// A renamed VM (newer history) followed by a retry of its old template.
	old := running(8, "before", "10.0.0.8", "", t0)
	renamed := old
	renamed.Name, renamed.Seq, renamed.Time = "after", 1, t0+30
	hook(t, in, spool, renamed, "running")
	hook(t, in, spool, old, "running")
	idle(t, js, "dns")
	if got := b.Lookup(t, "after.cloud.test.", mdns.TypeA); !slices.Equal(got, []string{"10.0.0.8"}) {
		t.Fatalf("after.cloud.test. A = %v", got)
	}
	if got := b.Lookup(t, "before.cloud.test.", mdns.TypeA); len(got) != 0 {
		t.Fatalf("stale name from a retried old template: %v", got)
	}
}

// A record somebody else made stays untouched; the event is dead-lettered
// with the reason.
func TestDNSForeignRecordDeadLettered(t *testing.T) { eachDNS(t, testDNSForeignRecordDeadLettered) }

func testDNSForeignRecordDeadLettered(t *testing.T, b *testenv.DNS) {
	b.AddForeign(t, "mail.cloud.test. 60 A 10.9.9.9")
	in := start(t, dnsConfig(t, b, ""))
	_, js := in.connect(t)
	hook(t, in, t.TempDir(), running(9, "mail", "10.0.0.9", "", time.Now().Unix()), "running")

	var dl []worker.DeadLetter
	testenv.WaitFor(t, 20*time.Second, "dead letter", func() bool { dl = deadLetters(t, js); return len(dl) > 0 })
	if dl[0].Worker != "dns" || dl[0].Reason != worker.ReasonConflict || !strings.Contains(dl[0].Error, "mail.cloud.test") {
		t.Fatalf("dead letter %+v", dl[0])
	}
	if got := b.Lookup(t, "mail.cloud.test.", mdns.TypeA); !slices.Equal(got, []string{"10.9.9.9"}) {
		t.Fatalf("foreign record changed: %v", got)
	}
	if got := b.Lookup(t, "9.0.0.10.in-addr.arpa.", mdns.TypePTR); len(got) != 0 {
		t.Fatalf("PTR written for a conflicting name: %v", got)
	}
}

// A PTR left by an old nsupdate hook names the VM, and the DNS server is
// down when the VM boots. The retry once it is back must not take that PTR
// for one its failed attempt wrote (that attempt's records are only pending): the
// event is dead-lettered as a conflict, and neither the retry nor the VM's
// delete touches the PTR (its own TTL shows it was never rewritten).
func TestDNSForeignPTRAfterOutage(t *testing.T) { eachDNS(t, testDNSForeignPTRAfterOutage) }

func testDNSForeignPTRAfterOutage(t *testing.T, b *testenv.DNS) {
	const rev = "12.0.0.10.in-addr.arpa."
	b.AddForeign(t, rev+" 77 PTR legacy.cloud.test.")
	in := start(t, dnsConfig(t, b, ""))
	_, js := in.connect(t)
	reg, err := worker.OpenRegistry(context.Background(), js, "dns")
	if err != nil {
		t.Fatal(err)
	}
	b.Stop()
	v := running(12, "legacy", "10.0.0.12", "", time.Now().Unix())
	hook(t, in, t.TempDir(), v, "running")
	testenv.WaitFor(t, 20*time.Second, "a failed attempt recorded", func() bool {
		r, _, err := reg.Get(context.Background(), "one.12")
		return err == nil && r != nil && r.Error != "" && len(r.Pending) > 0
	})
	b.Start(t)
	var dl []worker.DeadLetter
	testenv.WaitFor(t, 30*time.Second, "dead letter", func() bool { dl = deadLetters(t, js); return len(dl) > 0 })
	if dl[0].Reason != worker.ReasonConflict || !strings.Contains(dl[0].Error, rev) {
		t.Fatalf("dead letter %+v, want a conflict naming %s", dl[0], rev)
	}
	untouched := func(when string) {
		t.Helper()
		if got := ptrTTL(t, b, rev); got != "legacy.cloud.test./77" {
			t.Fatalf("%s: PTR %s is %q, want the foreign legacy.cloud.test. with its TTL 77", when, rev, got)
		}
	}
	untouched("after the retry")
	hook(t, in, t.TempDir(), done(v), "done")
	testenv.WaitFor(t, 20*time.Second, "A removed", gone(t, b, "legacy.cloud.test.", mdns.TypeA))
	idle(t, js, "dns")
	untouched("after the delete")
}

// ptrTTL returns "target/ttl" of the PTR at name ("" if none).
func ptrTTL(t *testing.T, b *testenv.DNS, name string) string {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, mdns.TypePTR)
	r, _, err := (&mdns.Client{Timeout: 5 * time.Second}).Exchange(m, b.Addr)
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	for _, rr := range r.Answer {
		if p, ok := rr.(*mdns.PTR); ok {
			return fmt.Sprintf("%s/%d", p.Ptr, p.Hdr.Ttl)
		}
	}
	return ""
}

// The DNS server down for a while: a VM boots and another one is deleted
// meanwhile; the worker retries both, then converges when the server is
// back: exactly the booted VM's records are left, nothing of the deleted
// one.
func TestDNSServerOutage(t *testing.T) { eachDNS(t, testDNSServerOutage) }

func testDNSServerOutage(t *testing.T, b *testenv.DNS) {
	in := start(t, dnsConfig(t, b, ""))
	_, js := in.connect(t)
	t0 := time.Now().Unix()
	gone := running(10, "gone", "10.0.0.10", "", t0)
	hook(t, in, t.TempDir(), gone, "running")
	testenv.WaitFor(t, 20*time.Second, "A before the outage", resolves(t, b, "gone.cloud.test.", mdns.TypeA, "10.0.0.10"))

	b.Stop()
	hook(t, in, t.TempDir(), running(11, "outage", "10.0.0.11", "", t0), "running")
	hook(t, in, t.TempDir(), done(gone), "done")
	reg, err := worker.OpenRegistry(context.Background(), js, "dns")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"one.11", "one.10"} {
		testenv.WaitFor(t, 20*time.Second, "a failed attempt recorded for "+key, func() bool {
			r, _, err := reg.Get(context.Background(), key)
			return err == nil && r != nil && r.Error != ""
		})
	}
	b.Start(t)
	testenv.WaitFor(t, 30*time.Second, "A after the server is back", resolves(t, b, "outage.cloud.test.", mdns.TypeA, "10.0.0.11"))
	idle(t, js, "dns")
	want := map[string][]string{
		"cloud.test.": {"ns1.cloud.test. A 127.0.0.1", "outage.cloud.test. A 10.0.0.11",
			"outage.cloud.test. TXT " + marker(in, "one.11")},
		"10.in-addr.arpa.": {"11.0.0.10.in-addr.arpa. PTR outage.cloud.test."},
	}
	for zone, w := range want {
		if got := b.Zone(t, zone); !slices.Equal(got, w) {
			t.Errorf("zone %s after the outage: %q, want %q", zone, got, w)
		}
	}
	if dl := deadLetters(t, js); len(dl) != 0 {
		t.Fatalf("outage dead-lettered: %+v", dl)
	}
}

// A wrong TSIG secret is a configuration error: one dead letter per event,
// a clear reason, no retry storm, and the secret is never printed, not even
// in a debug log.
func TestDNSWrongSecret(t *testing.T) { eachDNS(t, testDNSWrongSecret) }

func testDNSWrongSecret(t *testing.T, b *testenv.DNS) {
	wrong := "c2VjcmV0LXRoYXQtaXMtd3Jvbmctc2VjcmV0LXRoYXQtaXMtd3Jvbmc="
	var logs testenv.LogBuffer
	in := startLog(t, dnsConfig(t, b, writeFile(t, "wrong.secret", wrong+"\n")), zerolog.New(&logs).Level(zerolog.DebugLevel))
	defer func() {
		in.stop()
		out := logs.String()
		if !strings.Contains(out, "event dead-lettered") {
			t.Errorf("the debug log does not show the dead letter:\n%s", out)
		}
		for _, sec := range []string{wrong, b.Secret} {
			if strings.Contains(out, sec) {
				t.Errorf("a TSIG secret is in the log:\n%s", out)
			}
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Count(line, `"worker":`) > 1 {
				t.Errorf("log line with the worker field twice: %s", line)
			}
		}
	}()
	_, js := in.connect(t)
	hook(t, in, t.TempDir(), running(12, "badkey", "10.0.0.12", "", time.Now().Unix()), "running")
	var dl []worker.DeadLetter
	testenv.WaitFor(t, 20*time.Second, "dead letter", func() bool { dl = deadLetters(t, js); return len(dl) > 0 })
	d := dl[0]
	if d.Reason != worker.ReasonPermanent || d.Deliveries != 1 || strings.Contains(d.Error, wrong) || strings.Contains(d.Error, b.Secret) {
		t.Fatalf("dead letter %+v: want permanent after 1 delivery, no secret", d)
	}
	if !strings.Contains(d.Error, "rejected tsig key "+strconv.Quote(b.KeyName)) {
		t.Fatalf("dead letter error %q does not say the key is wrong", d.Error)
	}
}

// 200 VMs created and 100 of them deleted, all 300 hook runs shuffled and
// fired 10 at a time as HEM does (so a delete often runs before its VM's
// RUNNING): exactly the expected records at the end, nothing else in the
// zones.
func TestDNSBurst(t *testing.T) { eachDNS(t, testDNSBurst) }

func testDNSBurst(t *testing.T, b *testenv.DNS) {
	// The default timeout: an UPDATE given up on a loaded machine may still
	// be applied by the server after the VM's delete checked its names,
	// which leaves records behind (seen on Knot with 1s under load, and on
	// BIND too with 30ms).
	in := start(t, dnsConfigTimeout(t, b, "", "5s"))
	_, js := in.connect(t)
	t0 := time.Now().Unix()
	var runs []testenv.OneVM
	fwd := []string{"ns1.cloud.test. A 127.0.0.1"}
	var rev []string
	for i := 0; i < 200; i++ {
		v := running(1000+i, fmt.Sprintf("burst%d", i), fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), "", t0)
		runs = append(runs, v)
		if i%2 == 0 {
			runs = append(runs, done(v))
			continue
		}
		name := v.Name + ".cloud.test."
		ptr, _ := mdns.ReverseAddr(v.IP)
		fwd = append(fwd, name+" A "+v.IP, fmt.Sprintf("%s TXT %s", name, marker(in, fmt.Sprintf("one.%d", v.ID))))
		rev = append(rev, ptr+" PTR "+name)
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(runs), func(i, j int) { runs[i], runs[j] = runs[j], runs[i] })
	fire(t, in, t.TempDir(), runs, "")
	idle(t, js, "dns")
	sort.Strings(fwd)
	sort.Strings(rev)
	for _, z := range []struct {
		zone string
		want []string
	}{{"cloud.test.", fwd}, {"10.in-addr.arpa.", rev}} {
		if got := b.Zone(t, z.zone); !slices.Equal(got, z.want) {
			t.Errorf("zone %s: %d records, want %d:\n extra %v\n missing %v", z.zone, len(got), len(z.want),
				minus(got, z.want), minus(z.want, got))
		}
	}
	if dl := deadLetters(t, js); len(dl) != 0 {
		t.Fatalf("dead letters: %+v", dl[0])
	}
}

// minus returns the elements of a that b lacks.
func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// vmglue serve stopped, 20 hooks fired (spooled), serve started again on the
// same data: nothing is lost.
func TestServeRestartLosesNothing(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	cfg := dnsConfig(t, b, "")
	cfg.NATS.Embedded.Listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	in := start(t, cfg)
	spool := t.TempDir()
	t0 := time.Now().Unix()
	hook(t, in, spool, running(500, "first", "10.2.0.1", "", t0), "running")
	testenv.WaitFor(t, 20*time.Second, "first record", resolves(t, b, "first.cloud.test.", mdns.TypeA, "10.2.0.1"))
	in.stop()

	var vms []testenv.OneVM
	for i := 0; i < 20; i++ {
		vms = append(vms, running(501+i, fmt.Sprintf("down%d", i), fmt.Sprintf("10.2.0.%d", i+2), "", t0))
	}
	fire(t, in, spool, vms, "running")
	entries, err := os.ReadDir(spool)
	if err != nil {
		t.Fatal(err)
	}
	if n := countJSON(entries); n != 20 {
		t.Fatalf("%d events spooled, want 20", n)
	}

	in2 := start(t, cfg)
	var out, errb strings.Builder
	if code := cli.Execute(context.Background(), []string{"spool", "flush", "--dir", spool, "-s", in2.roleURL(t, eventbus.RoleOps)}, &out, &errb); code != 0 {
		t.Fatalf("spool flush: exit %d %s", code, errb.String())
	}
	for _, v := range vms {
		testenv.WaitFor(t, 20*time.Second, v.Name, resolves(t, b, v.Name+".cloud.test.", mdns.TypeA, v.IP))
	}
	entries, _ = os.ReadDir(spool)
	if n := countJSON(entries); n != 0 {
		t.Fatalf("%d events still spooled", n)
	}
}

func countJSON(entries []os.DirEntry) int {
	n := 0
	for _, e := range entries {
		if filepath.Ext(e.Name()) == ".json" {
			n++
		}
	}
	return n
}
