package dns

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// testConfig is a configuration for b's zones: cloud.test., 10/8 and fd00::/8.
func testConfig(b *testenv.BIND) Config {
	return Config{
		Servers:      []string{b.Addr},
		TSIG:         TSIG{Name: b.KeyName, SecretFile: b.SecretPath},
		ForwardZones: []string{"cloud.test"},
		ReverseZones: []string{"10.in-addr.arpa.", "d.f.ip6.arpa."},
		Addresses:    []string{"ip", "ip6", "ip6_global", "ip6_ula"},
		Timeout:      2 * time.Second,
	}
}

func newTarget(t testing.TB, cfg Config) *Target {
	t.Helper()
	tg, err := New(cfg, worker.Deps{Log: zerolog.Nop()})
	if err != nil {
		t.Fatalf("new target: %v", err)
	}
	t.Cleanup(func() { _ = tg.Close() })
	return tg
}

func testVM(id, name string, ips ...string) *eventbus.VM {
	vm := &eventbus.VM{Cloud: "one", CloudType: "opennebula", ID: id, Name: name, Kind: eventbus.KindRunning}
	for i, ip := range ips {
		nic := eventbus.NIC{ID: fmt.Sprint(i), Network: "public"}
		if len(ip) > 0 && (ip[0] == 'f' || ip[0] == '2') {
			nic.IP6 = ip
		} else {
			nic.IP = ip
		}
		vm.NICs = append(vm.NICs, nic)
	}
	return vm
}

// converge computes Desired and applies it over have, like the runtime.
func converge(t testing.TB, ctx context.Context, tg *Target, vm *eventbus.VM, have worker.Objects) (worker.Objects, error) {
	t.Helper()
	want, err := tg.Desired(vm)
	if err != nil {
		t.Fatalf("desired %s: %v", vm.Key(), err)
	}
	return tg.Apply(ctx, worker.Request{VM: vm, Have: have, Want: want})
}

// mustConverge is converge that fails the test on error and checks that
// the result is what Desired wanted.
func mustConverge(t testing.TB, tg *Target, vm *eventbus.VM, have worker.Objects) worker.Objects {
	t.Helper()
	got, err := converge(t, context.Background(), tg, vm, have)
	if err != nil {
		t.Fatalf("apply %s: %v", vm.Key(), err)
	}
	want, _ := tg.Desired(vm)
	if !maps.Equal(got, want) {
		t.Fatalf("apply %s returned %v, want %v", vm.Key(), got, want)
	}
	return got
}

func expect(t testing.TB, b *testenv.BIND, name string, qtype uint16, want ...string) {
	t.Helper()
	got := b.Lookup(t, name, qtype)
	sort.Strings(got)
	if fmt.Sprint(got) != fmt.Sprint(want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("%s %s = %q, want %q", name, mdns.TypeToString[qtype], got, want)
	}
}
