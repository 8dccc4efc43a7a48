package worker_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

// memTarget is an in-memory Target: a map of objects standing in for DNS or
// HAProxy. It is a test double for the RUNTIME's own tests — the runtime is
// what is under test here, and a map lets the tests block, fail and count
// Apply calls precisely. Real targets run the same conformance suite against
// their real servers in their own packages.
type memTarget struct {
	name string

	mu      sync.Mutex
	store   map[string]string // every object "in the target", ours or not
	cur     map[string]int    // Apply calls in progress per VM
	maxCur  int               // highest cur seen for one VM
	hook    func(ctx context.Context, vm *eventbus.VM) error
	resyncs []map[string]worker.Objects
}

func newMemTarget(name string) *memTarget {
	return &memTarget{name: name, store: map[string]string{}, cur: map[string]int{}}
}

func (m *memTarget) Name() string { return m.name }

// Desired is an A record for the first NIC and a TXT record with the "role"
// attribute; nothing once deleted.
func (m *memTarget) Desired(vm *eventbus.VM) (worker.Objects, error) {
	if vm.Deleted() {
		return worker.Objects{}, nil
	}
	if vm.Name == "" {
		return nil, worker.Permanent(fmt.Errorf("vm %s has no name", vm.Key()))
	}
	o := worker.Objects{}
	if len(vm.NICs) > 0 && vm.NICs[0].IP != "" {
		o["A "+vm.Name] = vm.NICs[0].IP
	}
	if r := vm.Attributes["role"]; r != "" {
		o["TXT "+vm.Name] = r
	}
	return o, nil
}

// Apply makes the store hold want for the keys it owns (those in have) or
// that are free, and reports a conflict for a key that someone else holds.
// It sets every wanted object, not only the difference, so that objects in
// have that an interrupted Apply never created are created now.
func (m *memTarget) Apply(ctx context.Context, req worker.Request) (worker.Objects, error) {
	vm, have, want := req.VM, req.Have, req.Want
	m.mu.Lock()
	m.cur[vm.Key()]++
	m.maxCur = max(m.maxCur, m.cur[vm.Key()])
	hook := m.hook
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.cur[vm.Key()]--
		m.mu.Unlock()
	}()
	if hook != nil {
		if err := hook(ctx, vm); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	inPlace := worker.Objects{}
	for k := range have {
		if v, ok := m.store[k]; ok {
			inPlace[k] = v
		}
	}
	var conflict error
	for k := range have {
		if _, keep := want[k]; !keep {
			if err := ctx.Err(); err != nil {
				return inPlace, err
			}
			delete(m.store, k)
			delete(inPlace, k)
		}
	}
	for k, v := range want {
		if err := ctx.Err(); err != nil {
			return inPlace, err
		}
		if _, exists := m.store[k]; exists {
			if _, ours := have[k]; !ours {
				conflict = worker.Permanent(fmt.Errorf("%s: %w", k, worker.ErrConflict))
				continue
			}
		}
		m.store[k] = v
		inPlace[k] = v
	}
	return inPlace, conflict
}

// Resync records its argument.
func (m *memTarget) Resync(_ context.Context, applied map[string]worker.Objects) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.resyncs = append(m.resyncs, applied)
	return nil
}

func (m *memTarget) setHook(h func(ctx context.Context, vm *eventbus.VM) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hook = h
}

// observe returns the store's objects under the VM's names.
func (m *memTarget) observe(vm *eventbus.VM) worker.Objects {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := worker.Objects{}
	for _, k := range []string{"A " + vm.Name, "TXT " + vm.Name} {
		if v, ok := m.store[k]; ok {
			o[k] = v
		}
	}
	return o
}

func (m *memTarget) maxConcurrent() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.maxCur
}

func testVM(id string) eventbus.VM {
	return eventbus.VM{Cloud: "one", CloudType: "opennebula", ID: id, Name: "web" + id, State: "ACTIVE",
		LCMState: "RUNNING", Kind: eventbus.KindRunning, NICs: []eventbus.NIC{{ID: "0", IP: "10.0.0.1"}},
		Attributes: map[string]string{"role": "web"}, Version: eventbus.Version{Seq: 1, Changed: 1000}}
}

// TestConformanceMemTarget runs the conformance suite against the in-memory
// reference target: it proves the suite and the runtime together.
func TestConformanceMemTarget(t *testing.T) {
	var cur *memTarget
	workertest.Run(t, workertest.Fixture{
		New: func(t *testing.T) worker.Target {
			cur = newMemTarget("mem")
			return cur
		},
		VM: func(_ *testing.T, id string) eventbus.VM { return testVM(id) },
		Change: func(vm *eventbus.VM) {
			vm.Attributes["role"] = "db"
			vm.NICs[0].IP = "10.0.0.2"
		},
		Observe: func(_ *testing.T, vm *eventbus.VM) worker.Objects { return cur.observe(vm) },
		PlantForeign: func(_ *testing.T, vm *eventbus.VM) worker.Objects {
			cur.mu.Lock()
			defer cur.mu.Unlock()
			cur.store["A "+vm.Name] = "192.0.2.99"
			return worker.Objects{"A " + vm.Name: "192.0.2.99"}
		},
	})
}
