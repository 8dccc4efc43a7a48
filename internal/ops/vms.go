package ops

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// The states of a worker for one VM (VMWorkerState.State), worst first.
const (
	StateDeadLetter = "dead letter" // the worker gave up on an event of the VM
	StateError      = "error"       // its last Apply failed; it retries
	StatePending    = "pending"     // an Apply is under way or was cut off
	StateConverged  = "converged"   // what it applied is what the VM needs
	StateNone       = "none"        // it recorded nothing: nothing to do, or not yet
)

// VMListRequest selects the VMs ListVMs returns.
type VMListRequest struct {
	// Query keeps the VMs whose cloud/id, name, hostname or an address
	// contains it, ignoring case; "" keeps every VM.
	Query string
	// Workers are the configured worker names: each has a state for every
	// VM, StateNone without a record.
	Workers []string
}

// VMSummary is one VM of the list: the essentials of its newest snapshot and
// each worker's state. A VM that only left records or dead letters (no
// snapshot) has only Cloud, ID and Workers.
type VMSummary struct {
	Cloud    string    `json:"cloud"`
	ID       string    `json:"id"`
	Name     string    `json:"name,omitempty"`
	Hostname string    `json:"hostname,omitempty"`
	Kind     string    `json:"kind,omitempty"`
	State    string    `json:"state,omitempty"`
	LCMState string    `json:"lcm_state,omitempty"`
	Host     string    `json:"host,omitempty"`
	IPs      []string  `json:"ips,omitempty"`
	Deleted  bool      `json:"deleted"`
	Changed  time.Time `json:"changed,omitzero"` // the source's time of the newest state
	// Workers holds the state of every worker that has one for the VM or
	// is named in VMListRequest.Workers.
	Workers map[string]VMWorkerState `json:"workers"`
}

// VMWorkerState is what one worker did for one VM.
type VMWorkerState struct {
	State       string    `json:"state"` // StateConverged, ...
	Applied     int       `json:"applied"`
	Pending     int       `json:"pending"`
	DeadLetters int       `json:"dead_letters"`
	Error       string    `json:"error,omitempty"`  // of the last Apply
	Updated     time.Time `json:"updated,omitzero"` // when its record was written
}

// ListVMs returns every VM the bus knows of (a snapshot, a worker record or
// a dead letter) that matches req.Query, sorted by cloud and id.
func ListVMs(ctx context.Context, js jetstream.JetStream, req VMListRequest) ([]VMSummary, error) {
	vms := map[string]*VMSummary{}
	sum := func(cloud, id string) *VMSummary {
		k := cloud + "." + id
		if vms[k] == nil {
			vms[k] = &VMSummary{Cloud: cloud, ID: id, Workers: map[string]VMWorkerState{}}
		}
		return vms[k]
	}
	err := bucketValues(ctx, js, eventbus.BucketVMs, func(key string, b []byte) error {
		var vm eventbus.VM
		if err := json.Unmarshal(b, &vm); err != nil {
			return fmt.Errorf("decode snapshot %s: %w", key, err)
		}
		sum(subjectToken(key, 0), subjectToken(key, 1)).setSnapshot(&vm)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = bucketValues(ctx, js, eventbus.BucketApplied, func(key string, b []byte) error {
		var rec worker.Record
		if err := json.Unmarshal(b, &rec); err != nil {
			return fmt.Errorf("decode record %s: %w", key, err)
		}
		s := sum(subjectToken(key, 1), subjectToken(key, 2))
		s.Workers[subjectToken(key, 0)] = VMWorkerState{State: recordState(&rec), Applied: len(rec.Applied),
			Pending: len(rec.Pending), Error: rec.Error, Updated: rec.Updated}
		return nil
	})
	if err != nil {
		return nil, err
	}
	dls, err := worker.ListDeadLetters(ctx, js, "")
	if err != nil {
		return nil, err
	}
	for _, dl := range dls {
		s := sum(subjectToken(dl.Subject, 2), subjectToken(dl.Subject, 3))
		ws := s.Workers[dl.Worker]
		ws.DeadLetters++
		ws.State = StateDeadLetter
		s.Workers[dl.Worker] = ws
	}
	q := strings.ToLower(req.Query)
	out := make([]VMSummary, 0, len(vms))
	for _, s := range vms {
		if q != "" && !s.matches(q) {
			continue
		}
		for _, w := range req.Workers {
			if _, ok := s.Workers[w]; !ok {
				s.Workers[w] = VMWorkerState{State: StateNone}
			}
		}
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b VMSummary) int {
		return cmp.Or(cmp.Compare(a.Cloud, b.Cloud), compareIDs(a.ID, b.ID))
	})
	return out, nil
}

func (s *VMSummary) setSnapshot(vm *eventbus.VM) {
	s.Name, s.Hostname, s.Kind, s.State, s.LCMState, s.Host = vm.Name, vm.Hostname, vm.Kind, vm.State, vm.LCMState, vm.Host
	s.Deleted = vm.Deleted()
	if vm.Version.Changed != 0 {
		s.Changed = time.Unix(0, vm.Version.Changed).UTC()
	}
	s.IPs = Addresses(vm)
}

// Addresses returns the addresses of a VM's NICs (IPv4, then IPv6 global,
// ULA and other), NIC by NIC.
func Addresses(vm *eventbus.VM) []string {
	var ips []string
	for _, n := range vm.NICs {
		for _, ip := range []string{n.IP, n.IP6Global, n.IP6ULA, n.IP6} {
			if ip != "" {
				ips = append(ips, ip)
			}
		}
	}
	return ips
}

// matches reports whether the lower-cased query q is part of the VM's
// cloud/id, name, hostname or an address.
func (s *VMSummary) matches(q string) bool {
	for _, f := range append([]string{s.Cloud + "/" + s.ID, s.Name, s.Hostname}, s.IPs...) {
		if strings.Contains(strings.ToLower(f), q) {
			return true
		}
	}
	return false
}

// recordState is the state a worker's record says, dead letters aside.
func recordState(rec *worker.Record) string {
	switch {
	case rec.Error != "":
		return StateError
	case len(rec.Pending) > 0:
		return StatePending
	default:
		return StateConverged
	}
}

// compareIDs orders numeric ids (OpenNebula's) by number, others as text.
func compareIDs(a, b string) int {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	if errA == nil && errB == nil {
		return cmp.Compare(x, y)
	}
	return cmp.Compare(a, b)
}

// WorkerError is the newest error a worker recorded, and for which VM.
type WorkerError struct {
	Cloud string    `json:"cloud"`
	ID    string    `json:"id"`
	Error string    `json:"error"`
	At    time.Time `json:"at"`
}

// LastErrors returns, per worker, the newest error of the listed VMs'
// records: the "last error" of a worker on the operator's page.
func LastErrors(vms []VMSummary) map[string]WorkerError {
	out := map[string]WorkerError{}
	for _, s := range vms {
		for w, ws := range s.Workers {
			if ws.Error != "" && ws.Updated.After(out[w].At) {
				out[w] = WorkerError{Cloud: s.Cloud, ID: s.ID, Error: ws.Error, At: ws.Updated}
			}
		}
	}
	return out
}

// bucketValues calls fn with every key and value of a KV bucket, read with
// one watch instead of a get per key.
func bucketValues(ctx context.Context, js jetstream.JetStream, bucket string, fn func(key string, value []byte) error) error {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return fmt.Errorf("open bucket %s: %w", bucket, err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("read %s: %w", bucket, err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("read %s: %w", bucket, ctx.Err())
		case e := <-w.Updates():
			if e == nil { // every current value was sent
				return nil
			}
			if err := fn(e.Key(), e.Value()); err != nil {
				return err
			}
		}
	}
}
