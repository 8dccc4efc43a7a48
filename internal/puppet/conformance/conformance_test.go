// Package conformance runs the worker conformance suite (workertest) on the
// puppet Target against a real Puppet Server CA, PuppetDB and a real
// embedded nats-server. It lives apart from package puppet so that puppet's
// own tests do not depend on the runtime's packages.
//
// The puppet worker creates nothing: a VM's agent gets its certificate
// (signed by the autosign policy, only for a VM that is booting or booted) and sends
// its facts, and the worker only records that the certificate and the node
// are the VM's. So the fixture plays the agent: right after vmglue recorded
// a live VM (an Apply of the real Target that leaves the VM's objects
// owned), it signs a certificate for the VM's certname and stores its facts,
// unless they exist. The suite then checks what the real CA and PuppetDB
// hold: a deleted VM's certificate cleaned and node deactivated, nothing of
// a VM vmglue never saw touched, and the registry in line.
package conformance

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/puppet"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopPuppet()
	os.Exit(code)
}

// run keeps certnames apart between runs: the stack may be shared.
var run = time.Now().UnixNano() % 1e8

func TestConformance(t *testing.T) {
	var target *puppet.Target
	workertest.Run(t, workertest.Fixture{
		New: func(t *testing.T) worker.Target {
			s := testenv.Puppet(t)
			tg, err := puppet.New(puppet.Config{CAURL: s.CAURL, PuppetDBURL: s.PuppetDBURL, Domain: "cloud.test",
				TLS: puppet.TLSConfig{CAFile: s.CAFile, CertFile: s.CertFile, KeyFile: s.KeyFile}}, worker.Deps{Log: zerolog.Nop()})
			if err != nil {
				t.Fatalf("new puppet target: %v", err)
			}
			target = tg
			return &agent{Target: tg, t: t, admin: testenv.NewPuppetAdmin(t, s)}
		},
		// Created now: before the agent's certificate, as for a real VM
		// (the worker leaves a certificate that predates the VM alone).
		VM: func(t *testing.T, id string) eventbus.VM {
			created := time.Now().UTC()
			return eventbus.VM{Cloud: "one", CloudType: "opennebula", ID: id, Name: fmt.Sprintf("conf%d-%s", run, id),
				Kind: eventbus.KindRunning, State: "ACTIVE", LCMState: "RUNNING",
				NICs:  []eventbus.NIC{{ID: "0", Network: "public", IP: "10.0.0.42"}},
				Times: eventbus.Times{Created: &created}}
		},
		// A renamed VM has another certname: the new certificate and node
		// are the VM's, the old ones stay its own until it is deleted.
		Change: func(vm *eventbus.VM) { vm.Name += "-renamed" },
		KeepOnChange: "a renamed live VM's agent keeps its certificate under the old certname: the worker never " +
			"revokes a live VM's certificate, it cleans every certname the VM had once the VM is deleted",
		Observe: func(t *testing.T, vm *eventbus.VM) worker.Objects {
			name := certname(t, target, vm)
			a := testenv.NewPuppetAdmin(t, testenv.Puppet(t))
			got := worker.Objects{}
			if a.CertState(name) == "signed" {
				got["cert "+name] = ""
			}
			if _, active := a.Node(name); active {
				got["node "+name] = ""
			}
			return got
		},
		NoForeign: "the puppet worker creates no object for a live VM, it records the certificate and node " +
			"the VM's agent gets through the autosign policy as the VM's: there is nothing of its own that a " +
			"foreign certificate could be in the way of; a certificate that predates the VM is refused as a " +
			"conflict at delete time instead (see internal/puppet/README.md, \"What it never touches\")",
	})
}

// certname is the VM's certname as the Target renders it.
func certname(t *testing.T, tg *puppet.Target, vm *eventbus.VM) string {
	t.Helper()
	name, err := tg.Certname(vm)
	if err != nil {
		t.Fatalf("certname of %s: %v", vm.Key(), err)
	}
	return name
}

// agent is the real Target plus the VM's Puppet agent: after an Apply that
// leaves the VM's certificate and node recorded for a live VM, the agent
// bootstraps (CSR signed) and runs (facts stored), as it would once the
// autosign policy, which consults the VM snapshots, lets it in.
type agent struct {
	*puppet.Target
	t     *testing.T
	admin *testenv.PuppetAdmin
}

func (a *agent) Apply(ctx context.Context, req worker.Request) (worker.Objects, error) {
	out, err := a.Target.Apply(ctx, req)
	if err != nil || req.VM.Deleted() {
		return out, err
	}
	for k := range out {
		name, ok := strings.CutPrefix(k, "cert ")
		if !ok {
			continue
		}
		if _, owned := out["node "+name]; !owned {
			continue
		}
		if a.admin.CertState(name) != "signed" {
			a.admin.SignedCert(name)
		}
		if _, active := a.admin.Node(name); !active {
			a.admin.ReplaceFacts(name)
		}
	}
	return out, nil
}
