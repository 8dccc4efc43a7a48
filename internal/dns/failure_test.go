package dns

import (
	"context"
	"errors"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// A wrong secret or an unknown key is a configuration error on every
// server: permanent at once (no retry storm), worded as a key problem that
// names where the server keeps its keys, never with the secret. PowerDNS
// answers such an update REFUSED, not NOTAUTH as BIND and Knot do.
func TestWrongKeyIsPermanent(t *testing.T) {
	where := map[string]string{
		testenv.KindBIND:     "named.conf",
		testenv.KindKnot:     "knot.conf",
		testenv.KindPowerDNS: "pdnsutil list-tsig-keys",
	}
	for _, kind := range testenv.DNSKinds {
		t.Run(kind, func(t *testing.T) {
			b := testenv.StartDNS(t, kind, testenv.DNSOptions{})
			for _, tc := range []struct {
				name   string
				secret string
				key    string
			}{
				{name: "wrong secret", secret: "c2VjcmV0LXRoYXQtaXMtd3Jvbmctd3Jvbmctd3Jvbmc=", key: b.KeyName},
				{name: "unknown key", secret: b.Secret, key: "nosuchkey"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					t.Setenv("VMGLUE_TEST_TSIG", tc.secret)
					cfg := testConfig(b)
					cfg.TSIG = TSIG{Name: tc.key, SecretEnv: "VMGLUE_TEST_TSIG"}
					tg := newTarget(t, cfg)
					_, err := converge(t, context.Background(), tg, testVM("42", "web1", "10.0.0.42"), nil)
					if !worker.IsPermanent(err) {
						t.Fatalf("err = %v, want permanent", err)
					}
					msg := err.Error()
					if !strings.Contains(msg, "rejected tsig key "+strconv.Quote(tc.key)) || !strings.Contains(msg, where[kind]) {
						t.Errorf("error %q does not say the key %q was rejected and name %q", msg, tc.key, where[kind])
					}
					if strings.Contains(msg, tc.secret) || strings.Contains(msg, b.Secret) {
						t.Fatalf("error contains the secret: %q", msg)
					}
					t.Logf("error: %v", err)
					if n := tg.Stats().Messages; n > 4 {
						t.Errorf("sent %d messages: no retry storm expected", n)
					}
					expect(t, b, "web1.cloud.test.", mdns.TypeA)
				})
			}
		})
	}
}

func TestOutageIsTransient(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	cfg := testConfig(b)
	tg := newTarget(t, cfg)
	vm := testVM("42", "web1", "10.0.0.42")
	have := mustConverge(t, tg, vm, nil)

	b.Stop()
	vm.NICs[0].IP = "10.0.0.43"
	got, err := converge(t, context.Background(), tg, vm, have)
	if err == nil || worker.IsPermanent(err) {
		t.Fatalf("err = %v, want a transient error", err)
	}
	if !maps.Equal(got, have) {
		t.Fatalf("after a failed apply got %v, want the old state %v", got, have)
	}

	b.Start(t)
	mustConverge(t, tg, vm, got)
	expect(t, b, "web1.cloud.test.", mdns.TypeA, "10.0.0.43")
	expect(t, b, "43.0.0.10.in-addr.arpa.", mdns.TypePTR, "web1.cloud.test.")
	expect(t, b, "42.0.0.10.in-addr.arpa.", mdns.TypePTR)
}

// A zone that refuses updates under a good key answers REFUSED: a frozen
// zone (BIND rndc freeze, Knot zone-freeze: an operator editing the zone
// file) or, on PowerDNS, a zone whose TSIG-ALLOW-DNSUPDATE does not name the
// key. Retried, not dead-lettered, worded for the server, and converged once
// the zone takes updates again.
func TestRefusedZoneIsTransient(t *testing.T) {
	for _, tc := range []struct {
		kind         string
		block, allow func(t *testing.T, b *testenv.DNS)
		hint         string
	}{
		{kind: testenv.KindBIND, hint: "rndc freeze",
			block: func(t *testing.T, b *testenv.DNS) { b.Rndc(t, "freeze", "cloud.test") },
			allow: func(t *testing.T, b *testenv.DNS) { b.Rndc(t, "thaw", "cloud.test") }},
		{kind: testenv.KindKnot, hint: "knotc zone-freeze",
			block: func(t *testing.T, b *testenv.DNS) { b.Knotc(t, "zone-freeze", "cloud.test.") },
			allow: func(t *testing.T, b *testenv.DNS) { b.Knotc(t, "zone-thaw", "cloud.test.") }},
		// PowerDNS caches zone metadata (zone-metadata-cache-ttl): restarted.
		{kind: testenv.KindPowerDNS, hint: "TSIG-ALLOW-DNSUPDATE names vmglue-test",
			block: func(t *testing.T, b *testenv.DNS) { pdnsMeta(t, b, "another-key") },
			allow: func(t *testing.T, b *testenv.DNS) { pdnsMeta(t, b, b.KeyName) }},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			b := testenv.StartDNS(t, tc.kind, testenv.DNSOptions{})
			tg := newTarget(t, testConfig(b))
			vm := testVM("42", "web1", "10.0.0.42")
			tc.block(t, b)
			got, err := converge(t, context.Background(), tg, vm, nil)
			if err == nil || worker.IsPermanent(err) || !strings.Contains(err.Error(), "REFUSED") || !strings.Contains(err.Error(), tc.hint) {
				t.Fatalf("err = %v, want a transient REFUSED naming %s", err, tc.hint)
			}
			t.Logf("error: %v", err)
			expect(t, b, "web1.cloud.test.", mdns.TypeA)
			tc.allow(t, b)
			mustConverge(t, tg, vm, got)
			expect(t, b, "web1.cloud.test.", mdns.TypeA, "10.0.0.42")
			expect(t, b, "42.0.0.10.in-addr.arpa.", mdns.TypePTR, "web1.cloud.test.")
		})
	}
}

// pdnsMeta sets cloud.test.'s TSIG-ALLOW-DNSUPDATE to key with PowerDNS
// stopped. (Without the setting PowerDNS takes unsigned updates from
// allow-dnsupdate-from.)
func pdnsMeta(t *testing.T, b *testenv.DNS, key string) {
	b.Stop()
	b.Pdnsutil(t, "set-meta", "cloud.test.", "TSIG-ALLOW-DNSUPDATE", key)
	b.Start(t)
}

func TestFailoverToSecondServer(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	cfg := testConfig(b)
	down := testenv.FreeUDPTCPPort(t) // nothing listens there
	cfg.Servers = []string{"127.0.0.1:" + strconv.Itoa(down), b.Addr}
	tg := newTarget(t, cfg)
	mustConverge(t, tg, testVM("42", "web1", "10.0.0.42"), nil)
	expect(t, b, "web1.cloud.test.", mdns.TypeA, "10.0.0.42")
}

func TestContextCancel(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	cfg := testConfig(b)
	cfg.Batch.Window = 300 * time.Millisecond // the part waits in the batcher
	tg := newTarget(t, cfg)
	vm := testVM("42", "web1", "10.0.0.42")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	got, err := converge(t, ctx, tg, vm, nil)
	if !errors.Is(err, context.DeadlineExceeded) || worker.IsPermanent(err) {
		t.Fatalf("err = %v, want a transient context.DeadlineExceeded", err)
	}
	if len(got) != 0 {
		t.Fatalf("cancelled apply reports %v as applied", got)
	}
	// The batch may still reach the server after the caller gave up: the next
	// Apply must converge in either case.
	mustConverge(t, tg, vm, got)
	expect(t, b, "web1.cloud.test.", mdns.TypeA, "10.0.0.42")
	expect(t, b, "web1.cloud.test.", mdns.TypeTXT, marker42)
}

func TestSecretFromFile(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	cfg := testConfig(b)
	cfg.TSIG.SecretFile = filepath.Join(t.TempDir(), "missing")
	if _, err := New(cfg, worker.Deps{Log: zerolog.Nop()}); err == nil || !strings.Contains(err.Error(), "secret_file") {
		t.Fatalf("missing secret file: err = %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte("not base64 !!"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.TSIG.SecretFile = bad
	_, err := New(cfg, worker.Deps{Log: zerolog.Nop()})
	if err == nil || strings.Contains(err.Error(), "not base64 !!") {
		t.Fatalf("bad secret: err = %v (must fail without echoing the secret)", err)
	}
}

func TestUnservedZoneIsPermanent(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	cfg := testConfig(b)
	cfg.ForwardZones = []string{"elsewhere.test."}
	tg := newTarget(t, cfg)
	_, err := converge(t, context.Background(), tg, testVM("42", "web1", "10.0.0.42"), nil)
	if !worker.IsPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	t.Logf("unserved zone: %v", err)
}

func TestMetrics(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	tg := newTarget(t, testConfig(b))
	mustConverge(t, tg, testVM("42", "web1", "10.0.0.42"), nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(tg.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			found[mf.GetName()] += m.GetCounter().GetValue()
		}
	}
	if found["vmglue_dns_update_messages_total"] != 2 || found["vmglue_dns_update_records_total"] != 3 {
		t.Fatalf("metrics = %v, want 2 messages and 3 records", found)
	}
}

// A failover after the first server timed out comes past the caller's
// lease: the parts are checked again before each further server, so the
// zone is not changed for a converge that no longer holds its VM. The
// first server is a silent UDP and TCP listener (it reads, never answers).
func TestNoFailoverPastTheLease(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	cfg := testConfig(b)
	cfg.Timeout = 400 * time.Millisecond
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	l, err := net.Listen("tcp", u.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // accept and hold: no answer
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	cfg.Servers = []string{u.LocalAddr().String(), b.Addr}
	tg := newTarget(t, cfg)

	// The lease's validity ends while the first server is silent.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if _, err := converge(t, ctx, tg, testVM("42", "web1", "10.0.0.42"), nil); err == nil {
		t.Fatal("apply past its deadline succeeded")
	}
	// One UPDATE in flight per zone: once another VM converged (through the
	// silent server, then BIND), the first batch is done with.
	mustConverge(t, tg, testVM("43", "web2", "10.0.0.43"), nil)
	expect(t, b, "web2.cloud.test.", mdns.TypeA, "10.0.0.43")
	if got := b.Lookup(t, "web1.cloud.test.", mdns.TypeA); len(got) != 0 {
		t.Fatalf("web1's UPDATE was sent to the second server after its caller's deadline: %v", got)
	}
}
