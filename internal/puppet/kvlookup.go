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
// Scaling: the pass over the bucket (a single WatchAll, not one Get per
// key) reads deleted VMs' snapshots too: ≈130–140 ms per 10,000 snapshots
// on the 2-core test machine, linear. With UseIndex a certname the puppet
// worker recorded costs two reads instead (make bench-autosign has both);
// the pass remains for certnames the index has no live VM for.
type KVLookup struct {
	kv       jetstream.KeyValue
	certname *template.Template
	domain   string
	index    *CertIndex
}

// UseIndex makes VMByCertname look in idx first.
func (l *KVLookup) UseIndex(idx *CertIndex) { l.index = idx }

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
	if l.index != nil {
		vm, err := l.fromIndex(ctx, certname)
		if vm != nil || err != nil {
			return vm, err
		}
	}
	return l.scan(ctx, certname)
}

// fromIndex returns the live VM the index records for certname, checked
// against its snapshot; nil when the index has none (absent, stale, or
// only deleted VMs): the caller then scans.
func (l *KVLookup) fromIndex(ctx context.Context, certname string) (*eventbus.VM, error) {
	keys, _, err := l.index.Get(ctx, certname)
	if err != nil {
		return nil, err
	}
	var live *eventbus.VM
	for _, key := range keys {
		e, err := l.kv.Get(ctx, key)
		if eventbus.IsNoKey(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get snapshot %s: %w", key, err)
		}
		vm, ok := l.matches(e.Value(), certname)
		switch {
		case !ok || vm.Deleted():
		case live != nil:
			return nil, fmt.Errorf("%w: %s and %s", ErrAmbiguous, live.Key(), vm.Key())
		default:
			live = vm
		}
	}
	return live, nil
}

// matches decodes a stored snapshot and reports whether it renders
// certname.
func (l *KVLookup) matches(b []byte, certname string) (*eventbus.VM, bool) {
	vm, err := decodeVM(b)
	if err != nil {
		return nil, false
	}
	name, err := renderCertname(l.certname, l.domain, vm)
	return vm, err == nil && name == certname
}

// scan is one pass over every snapshot.
func (l *KVLookup) scan(ctx context.Context, certname string) (*eventbus.VM, error) {
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
		vm, ok := l.matches(e.Value(), certname)
		if !ok {
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
