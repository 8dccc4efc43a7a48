// Package conformance runs the worker conformance suite (workertest) on the
// dns Target against each DNS server vmglue supports (BIND, Knot DNS,
// PowerDNS: subtests bind, knot, pdns) and a real embedded nats-server. It lives
// apart from package dns so that dns's own tests do not depend on the
// runtime's packages.
package conformance

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/dns"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

func TestConformance(t *testing.T) {
	for _, kind := range testenv.DNSKinds {
		t.Run(kind, func(t *testing.T) { run(t, kind) })
	}
}

func run(t *testing.T, kind string) {
	var (
		bind   *testenv.DNS
		target *dns.Target
	)
	workertest.Run(t, workertest.Fixture{
		New: func(t *testing.T) worker.Target {
			bind = testenv.StartDNS(t, kind, testenv.DNSOptions{})
			tg, err := dns.New(dns.Config{
				Servers:      []string{bind.Addr},
				TSIG:         dns.TSIG{Name: bind.KeyName, SecretFile: bind.SecretPath},
				ForwardZones: []string{"cloud.test."},
				ReverseZones: []string{"10.in-addr.arpa.", "d.f.ip6.arpa."},
			}, worker.Deps{Log: zerolog.Nop()})
			if err != nil {
				t.Fatalf("new dns target: %v", err)
			}
			t.Cleanup(func() { _ = tg.Close() })
			target = tg
			return tg
		},
		VM: func(t *testing.T, id string) eventbus.VM {
			return eventbus.VM{Cloud: "one", CloudType: "opennebula", ID: id, Name: "conf-" + id,
				Kind: eventbus.KindRunning, State: "ACTIVE", LCMState: "RUNNING",
				NICs: []eventbus.NIC{{ID: "0", Network: "public", IP: "10.0.0.42", IP6: "fd00::42"}}}
		},
		Change: func(vm *eventbus.VM) { vm.NICs[0].IP = "10.0.0.43" },
		Observe: func(t *testing.T, vm *eventbus.VM) worker.Objects {
			running := *vm
			running.Kind = eventbus.KindRunning
			names, err := target.Desired(&running)
			if err != nil {
				t.Fatalf("desired: %v", err)
			}
			got := worker.Objects{}
			for key := range names {
				typ, name, _ := strings.Cut(key, " ")
				vals := bind.Lookup(t, name, mdns.StringToType[typ])
				if len(vals) == 0 {
					continue
				}
				slices.SortFunc(vals, func(a, b string) int {
					x, errx := netip.ParseAddr(a)
					y, erry := netip.ParseAddr(b)
					if errx != nil || erry != nil {
						return strings.Compare(a, b)
					}
					return x.Compare(y)
				})
				got[key] = strings.Join(vals, ",")
			}
			return got
		},
		RemoveByHand: func(t *testing.T, vm *eventbus.VM) {
			// An operator deletes the VM's whole forward name.
			bind.DeleteByHand(t, "conf-"+strings.ToLower(vm.ID)+".cloud.test.", "ANY")
		},
		PlantForeign: func(t *testing.T, vm *eventbus.VM) worker.Objects {
			name := "conf-" + strings.ToLower(vm.ID) + ".cloud.test."
			bind.AddForeign(t, name+" 300 A 10.9.9.9")
			return worker.Objects{"A " + name: "10.9.9.9"}
		},
	})
}
