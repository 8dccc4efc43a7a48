package dns

import (
	"context"
	"errors"
	"maps"
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

func TestWrongSecretIsPermanent(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
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
			if !strings.Contains(err.Error(), "NOTAUTH") || !strings.Contains(err.Error(), tc.key) {
				t.Errorf("error %q does not say NOTAUTH and name the key", err)
			}
			if strings.Contains(err.Error(), tc.secret) || strings.Contains(err.Error(), b.Secret) {
				t.Fatalf("error contains the secret: %q", err)
			}
			t.Logf("error: %v", err)
			if n := tg.Stats().Messages; n > 4 {
				t.Errorf("sent %d messages: no retry storm expected", n)
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

// A frozen zone (rndc freeze, an operator editing the zone file) answers
// REFUSED: retried, not dead-lettered, and converged once thawed.
func TestFrozenZoneIsTransient(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	tg := newTarget(t, testConfig(b))
	vm := testVM("42", "web1", "10.0.0.42")
	b.Rndc(t, "freeze", "cloud.test")
	got, err := converge(t, context.Background(), tg, vm, nil)
	if err == nil || worker.IsPermanent(err) || !strings.Contains(err.Error(), "REFUSED") {
		t.Fatalf("err = %v, want a transient REFUSED", err)
	}
	expect(t, b, "web1.cloud.test.", mdns.TypeA)
	b.Rndc(t, "thaw", "cloud.test")
	mustConverge(t, tg, vm, got)
	expect(t, b, "web1.cloud.test.", mdns.TypeA, "10.0.0.42")
	expect(t, b, "42.0.0.10.in-addr.arpa.", mdns.TypePTR, "web1.cloud.test.")
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
