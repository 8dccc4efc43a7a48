package puppet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/template"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
)

// KVLookup is the reference Lookup: it reads every snapshot of the
// eventbus.BucketVMs bucket and renders the certname template for each.
//
// Scaling: one autosign costs one pass over the bucket (a single
// WatchAll, not one Get per key), deleted VMs' snapshots included:
// ≈130–140 ms per 10,000 snapshots on the 2-core test machine (make
// bench-autosign), linear. That is fine for thousands of VMs; for more,
// the runtime should keep a certname → VM key index (a KV bucket written
// when the puppet worker records "cert <certname>"), and a Lookup over it
// costs two Gets.
type KVLookup struct {
	kv       jetstream.KeyValue
	certname *template.Template
	domain   string
}

// NewKVLookup returns a Lookup over kv (the eventbus.BucketVMs bucket)
// with cfg's certname template (SetDefaults is applied to a copy).
func NewKVLookup(kv jetstream.KeyValue, cfg Config) (*KVLookup, error) {
	cfg.SetDefaults()
	tmpl, err := parseCertname(cfg.Certname)
	if err != nil {
		return nil, fmt.Errorf("puppet.certname: %w", err)
	}
	return &KVLookup{kv: kv, certname: tmpl, domain: cfg.Domain}, nil
}

// ErrAmbiguous is returned when several live VMs render the same certname.
var ErrAmbiguous = errors.New("several live VMs have this certname")

// VMByCertname returns the live VM with certname; when only deleted VMs
// have it, one of them (so that the refusal names it); nil when none does.
// Snapshots that do not decode, or whose certname does not render, are
// skipped: they cannot be the VM asking.
func (l *KVLookup) VMByCertname(ctx context.Context, certname string) (*eventbus.VM, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := l.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("watch %s: %w", eventbus.BucketVMs, err)
	}
	defer w.Stop()
	var live, dead *eventbus.VM
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("read %s: %w", eventbus.BucketVMs, ctx.Err())
		case e = <-w.Updates():
		}
		if e == nil { // initial values done
			break
		}
		vm, err := decodeVM(e.Value())
		if err != nil {
			continue
		}
		name, err := renderCertname(l.certname, l.domain, vm)
		if err != nil || name != certname {
			continue
		}
		switch {
		case vm.Deleted():
			dead = vm
		case live != nil:
			return nil, fmt.Errorf("%w: %s and %s", ErrAmbiguous, live.Key(), vm.Key())
		default:
			live = vm
		}
	}
	if live != nil {
		return live, nil
	}
	return dead, nil
}

// decodeVM reads a snapshot stored as an eventbus.VM or as a whole Event.
func decodeVM(b []byte) (*eventbus.VM, error) {
	var probe struct {
		SpecVersion string          `json:"specversion"`
		Data        json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("decode vm snapshot: %w", err)
	}
	if probe.SpecVersion != "" {
		b = probe.Data
	}
	var vm eventbus.VM
	if err := json.Unmarshal(b, &vm); err != nil {
		return nil, fmt.Errorf("decode vm snapshot: %w", err)
	}
	if vm.Cloud == "" || vm.ID == "" {
		return nil, errors.New("decode vm snapshot: no cloud or id")
	}
	return &vm, nil
}
