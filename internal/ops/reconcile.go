package ops

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// ReconcileRequest selects what Reconcile compares.
type ReconcileRequest struct {
	Cloud string // only this cloud
	VM    string // only this VM id
}

// VMPlan is the plan of one worker for one VM: how its target differs from
// what the worker wants for the VM's newest snapshot.
type VMPlan struct {
	Worker   string           `json:"worker"`
	Cloud    string           `json:"cloud"`
	VM       string           `json:"vm"`
	Findings []worker.Finding `json:"findings,omitempty"`
	// CannotVerify says the worker cannot read its target back (it is no
	// worker.Verifier): no findings are known for it.
	CannotVerify bool `json:"cannot_verify,omitempty"`
	// Error is why the VM could not be checked (target down, invalid
	// name); empty when it was.
	Error string `json:"error,omitempty"`
}

// Key is the VM key "<cloud>.<vmid>".
func (p VMPlan) Key() string { return p.Cloud + "." + p.VM }

// Drifted reports whether applying the plan has something to do.
func (p VMPlan) Drifted() bool { return len(p.Findings) > 0 }

// Reconcile compares, for each target, what it wants for every VM it knows
// (the newest snapshots and its registry, selected by req) with what its
// target holds (worker.Verifier), and returns the plans, sorted by worker
// and VM. It changes nothing. each, when not nil, is called after each VM
// (for a progress bar) with the number of VMs done and in all.
func Reconcile(ctx context.Context, js jetstream.JetStream, targets []worker.Target, req ReconcileRequest, each func(done, total int)) ([]VMPlan, error) {
	if req.Cloud != "" {
		if err := checkToken(req.Cloud, "--cloud"); err != nil {
			return nil, err
		}
	}
	if req.VM != "" {
		if err := checkToken(req.VM, "--vm"); err != nil {
			return nil, err
		}
	}
	snaps, err := worker.OpenSnapshots(ctx, js)
	if err != nil {
		return nil, err
	}
	vms, err := snaps.List(ctx)
	if err != nil {
		return nil, err
	}
	type job struct {
		t    worker.Target
		key  string
		have worker.Objects
	}
	var jobs []job
	for _, t := range targets {
		reg, err := worker.OpenRegistry(ctx, js, t.Name())
		if err != nil {
			return nil, err
		}
		recs, err := reg.List(ctx)
		if err != nil {
			return nil, err
		}
		keys := map[string]bool{}
		for k := range vms {
			keys[k] = true
		}
		for k := range recs {
			keys[k] = true
		}
		for k := range keys {
			if selected(k, req) {
				jobs = append(jobs, job{t: t, key: k, have: recs[k].Have()})
			}
		}
	}
	sort.Slice(jobs, func(i, j int) bool {
		if jobs[i].t.Name() != jobs[j].t.Name() {
			return jobs[i].t.Name() < jobs[j].t.Name()
		}
		return jobs[i].key < jobs[j].key
	})
	plans := make([]VMPlan, 0, len(jobs))
	for i, j := range jobs {
		if err := ctx.Err(); err != nil {
			return plans, err
		}
		plans = append(plans, planOf(ctx, j.t, j.key, vms[j.key], j.have))
		if each != nil {
			each(i+1, len(jobs))
		}
	}
	return plans, nil
}

// selected reports whether the VM key "<cloud>.<vmid>" matches req.
func selected(key string, req ReconcileRequest) bool {
	cloud, id, _ := strings.Cut(key, ".")
	return (req.Cloud == "" || cloud == req.Cloud) && (req.VM == "" || id == req.VM)
}

// planOf verifies one VM for one target. vm is its newest snapshot, nil
// when vmglue has none (then the worker wants nothing for it).
func planOf(ctx context.Context, t worker.Target, key string, vm *eventbus.VM, have worker.Objects) VMPlan {
	cloud, id, _ := strings.Cut(key, ".")
	p := VMPlan{Worker: t.Name(), Cloud: cloud, VM: id}
	v, ok := t.(worker.Verifier)
	if !ok {
		p.CannotVerify = true
		return p
	}
	want := worker.Objects{}
	if vm == nil {
		vm = &eventbus.VM{Cloud: cloud, ID: id}
	} else {
		w, err := t.Desired(vm)
		if err != nil {
			p.Error = fmt.Sprintf("desired: %v", err)
			return p
		}
		if w != nil {
			want = w
		}
	}
	rb, err := v.Verify(ctx, worker.Request{VM: vm, Have: have, Want: want})
	if err != nil {
		p.Error = err.Error()
		return p
	}
	p.Findings = worker.Compare(want, rb)
	return p
}

// ApplyPlan asks serve's worker to converge the plan's VM with
// verification: it republishes the VM's newest stored event with the
// headers eventbus.HeaderReplay and worker.HeaderForWorker, so the normal
// runtime repairs it (lease, registry, dead letters). It returns false
// when the stream holds no event of the VM.
func ApplyPlan(ctx context.Context, js jetstream.JetStream, p VMPlan) (bool, error) {
	subj := strings.Join([]string{eventbus.SubjectPrefix, p.Cloud, p.VM, "*"}, ".")
	st, err := js.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		return false, fmt.Errorf("open stream %s: %w", eventbus.StreamEvents, err)
	}
	m, err := st.GetLastMsgForSubject(ctx, subj)
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return false, nil
		}
		return false, fmt.Errorf("last event of vm %s: %w", p.Key(), err)
	}
	return true, republish(ctx, js, m.Subject, m.Data, p.Worker)
}

// republish publishes data to subject as a replayed event (for one worker
// when worker is not empty), without a Nats-Msg-Id.
func republish(ctx context.Context, js jetstream.JetStream, subject string, data []byte, workerName string) error {
	pm := nats.NewMsg(subject)
	pm.Data = data
	pm.Header.Set(eventbus.HeaderReplay, "1")
	if workerName != "" {
		pm.Header.Set(worker.HeaderForWorker, workerName)
	}
	if _, err := js.PublishMsg(ctx, pm, jetstream.WithExpectStream(eventbus.StreamEvents)); err != nil {
		return fmt.Errorf("republish %s: %w", subject, err)
	}
	return nil
}
