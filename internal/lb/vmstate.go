package lb

import (
	"sync"
	"time"

	"github.com/vmglue/vmglue/internal/worker"
)

// vmState serialises Apply and Resync for one VM and remembers what Apply
// last returned, so a Resync working from an older copy of the registry
// never re-adds a server that Apply has just removed.
type vmState struct {
	mu    sync.Mutex
	known bool
	last  worker.Objects
	// gen is the Resync generation (Target.gen) when Apply last returned.
	gen uint64
	// drains holds when Resync started draining a leaving server (by
	// object key), so its drain timeout holds across Resyncs.
	drains map[string]time.Time
}

func (t *Target) vm(key string) *vmState {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.vms[key]
	if !ok {
		s = &vmState{}
		t.vms[key] = s
	}
	return s
}

// applied records what Apply returned for the VM of s; the caller holds
// s.mu.
func (t *Target) applied(s *vmState, out worker.Objects) {
	t.mu.Lock()
	s.gen = t.gen
	t.mu.Unlock()
	s.known, s.last = true, out
}

// prune begins a Resync generation and forgets the VMs that hold nothing
// and whose state no Resync needs: those without servers and without a
// drain in progress that Apply never handled in this process (a Resync
// made them), or that Apply left empty before the previous Resync began
// (so no Resync still works from a registry copy older than that Apply).
// Called at the start of every Resync, it bounds the map by the VMs with
// servers plus those emptied since the Resync before: under churn (VMs
// created and deleted) it stays flat instead of holding every VM ever seen.
// A state in use (locked) is kept. It returns how many states remain.
func (t *Target) prune() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	for k, s := range t.vms {
		if !s.mu.TryLock() {
			continue
		}
		if len(s.last) == 0 && len(s.drains) == 0 && (!s.known || s.gen+1 < t.gen) {
			delete(t.vms, k)
		}
		s.mu.Unlock()
	}
	return len(t.vms)
}
