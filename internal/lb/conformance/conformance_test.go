// Package conformance runs the worker conformance suite (workertest) on the
// lb Target against two real HAProxy processes (one admin socket on unix,
// one on TCP) and a real embedded nats-server. It lives apart from package
// lb so that lb's own tests do not depend on the runtime's packages.
package conformance

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/lb"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

// backends of every HAProxy instance; the VM joins both.
var backends = []string{"web", "api"}

const (
	membership = "web:8080,api:9000"
	weight     = 10
)

func TestConformance(t *testing.T) {
	var instances map[string]*testenv.HAProxy // by instance name
	workertest.Run(t, workertest.Fixture{
		New: func(t *testing.T) worker.Target {
			var bes []testenv.HAProxyBackend
			for _, b := range backends {
				bes = append(bes, testenv.HAProxyBackend{Name: b})
			}
			instances = map[string]*testenv.HAProxy{
				"lb1": testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: bes}),
				"lb2": testenv.StartHAProxy(t, testenv.HAProxyOptions{Backends: bes, TCPAdmin: true}),
			}
			tg, err := lb.New(lb.Config{
				Instances: []lb.Instance{
					{Name: "lb1", Address: instances["lb1"].Admin()},
					{Name: "lb2", Address: instances["lb2"].AdminTCP()},
				},
				Allow:          []lb.Allow{{Backends: backends, Ports: []string{"1-65535"}}},
				Server:         lb.ServerOptions{Weight: weight, Check: true},
				DrainPoll:      20 * time.Millisecond,
				CommandTimeout: 2 * time.Second,
			}, worker.Deps{Log: zerolog.Nop()})
			if err != nil {
				t.Fatalf("new lb target: %v", err)
			}
			return tg
		},
		VM: func(t *testing.T, id string) eventbus.VM {
			return eventbus.VM{Cloud: "one", CloudType: "opennebula", ID: id, Name: "conf-" + id,
				Kind: eventbus.KindRunning, State: "ACTIVE", LCMState: "RUNNING",
				Attributes: map[string]string{lb.DefaultAttribute: membership},
				NICs:       []eventbus.NIC{{ID: "0", Network: "public", IP: "127.0.0.42"}}}
		},
		Change: func(vm *eventbus.VM) { vm.NICs[0].IP = "127.0.0.43" },
		Observe: func(t *testing.T, vm *eventbus.VM) worker.Objects {
			return observe(t, instances, serverName(vm))
		},
		RemoveByHand: func(t *testing.T, vm *eventbus.VM) {
			// An operator deletes the VM's server from one backend.
			h := instances["lb1"]
			h.Command("disable server web/" + serverName(vm))
			if r := h.Command("del server web/" + serverName(vm)); !strings.Contains(r, "Server deleted") {
				t.Fatalf("del server: %q", r)
			}
		},
		PlantForeign: func(t *testing.T, vm *eventbus.VM) worker.Objects {
			// An operator's server under the name the VM's will get, in
			// one backend of one instance.
			h := instances["lb2"]
			if r := h.Command("add server web/" + serverName(vm) + " 127.0.0.9:80"); !strings.Contains(r, "New server registered") {
				t.Fatalf("plant foreign server: %q", r)
			}
			key := "lb2/web/" + serverName(vm)
			got := observe(t, instances, serverName(vm))
			if _, ok := got[key]; !ok || len(got) != 1 {
				t.Fatalf("planted %s, haproxy shows %v", key, got)
			}
			return got
		},
	})
}

// serverName is the default server_name template "<cloud>-<vmid>".
func serverName(vm *eventbus.VM) string { return vm.Cloud + "-" + vm.ID }

// observe reads "show servers state" of every instance and returns each
// server called name, in any backend, keyed "<instance>/<backend>/<server>"
// like the Target's objects. The value is written the way Desired writes a
// server in the pool, "<ip>:<port> weight <w>[ check]", prefixed with what
// keeps it out of the pool ("maint ", "drain ") so that a half-added or
// draining server never passes for a converged one.
func observe(t *testing.T, instances map[string]*testenv.HAProxy, name string) worker.Objects {
	t.Helper()
	got := worker.Objects{}
	for inst, h := range instances {
		for _, l := range strings.Split(h.Command("show servers state"), "\n")[1:] {
			f := strings.Fields(l)
			if len(f) == 0 || strings.HasPrefix(f[0], "#") {
				continue
			}
			if len(f) < 19 {
				t.Fatalf("%s: short show servers state line %q", inst, l)
			}
			if f[3] != name {
				continue
			}
			admin, err1 := strconv.Atoi(f[6])
			check, err2 := strconv.Atoi(f[13])
			if err1 != nil || err2 != nil {
				t.Fatalf("%s: bad show servers state line %q", inst, l)
			}
			var v strings.Builder
			if admin&0x01 != 0 { // forced maintenance: added, not enabled
				v.WriteString("maint ")
			}
			if admin&0x08 != 0 { // forced drain
				v.WriteString("drain ")
			}
			fmt.Fprintf(&v, "%s:%s weight %s", f[4], f[18], f[7])
			if check&0x04 != 0 { // health checks enabled
				v.WriteString(" check")
			}
			got[inst+"/"+f[1]+"/"+f[3]] = v.String()
		}
	}
	return got
}
