package puppet

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// CertIndex maps a certname to the VMs ("<cloud>.<vmid>") the puppet worker
// recorded it for: the KV bucket eventbus.BucketCertnames, key the certname,
// value a JSON array of VM keys. The worker adds a VM when it records
// "cert <certname>" and removes it once the certificate is cleaned, so that
// `vmglue autosign` finds the VM of a CSR with two reads instead of a pass
// over every snapshot. It is an accelerator, never the authority: KVLookup
// checks the snapshots it points to and falls back to the pass when the
// index has no live VM for a certname.
type CertIndex struct {
	kv jetstream.KeyValue
}

// OpenCertIndex opens the provisioned bucket eventbus.BucketCertnames.
func OpenCertIndex(ctx context.Context, js jetstream.JetStream) (*CertIndex, error) {
	kv, err := js.KeyValue(ctx, eventbus.BucketCertnames)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", eventbus.BucketCertnames, err)
	}
	return &CertIndex{kv: kv}, nil
}

// Get returns the VM keys recorded for certname (nil when none) and the
// entry's revision (0 when absent).
func (x *CertIndex) Get(ctx context.Context, certname string) ([]string, uint64, error) {
	ctx, cancel := worker.RequestContext(ctx) // a lease context has no timeout of its own
	defer cancel()
	if !ValidCertname(certname) {
		return nil, 0, fmt.Errorf("certname index: %q: %w", excerpt([]byte(certname)), ErrInvalidCertname)
	}
	e, err := x.kv.Get(ctx, certname)
	if eventbus.IsNoKey(err) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("certname index: get %s: %w", certname, err)
	}
	var keys []string
	if err := json.Unmarshal(e.Value(), &keys); err != nil {
		return nil, 0, fmt.Errorf("certname index: decode %s: %w", certname, err)
	}
	return keys, e.Revision(), nil
}

// Add records vmKey for certname; adding it again changes nothing.
func (x *CertIndex) Add(ctx context.Context, certname, vmKey string) error {
	return x.update(ctx, certname, func(keys []string) []string {
		if slices.Contains(keys, vmKey) {
			return keys
		}
		keys = append(keys, vmKey)
		slices.Sort(keys)
		return keys
	})
}

// Remove forgets vmKey for certname; the entry goes with its last VM.
func (x *CertIndex) Remove(ctx context.Context, certname, vmKey string) error {
	return x.update(ctx, certname, func(keys []string) []string {
		return slices.DeleteFunc(keys, func(k string) bool { return k == vmKey })
	})
}

// update applies fn to the entry of certname with compare-and-set,
// retrying when another writer got in between.
func (x *CertIndex) update(ctx context.Context, certname string, fn func([]string) []string) error {
	ctx, cancel := worker.RequestContext(ctx) // a lease context has no timeout of its own
	defer cancel()
	for range maxCAS {
		keys, rev, err := x.Get(ctx, certname)
		if err != nil {
			return err
		}
		next := fn(slices.Clone(keys))
		if slices.Equal(next, keys) {
			return nil
		}
		switch {
		case len(next) == 0 && rev != 0:
			err = x.kv.Delete(ctx, certname, jetstream.LastRevision(rev))
		case rev == 0:
			var b []byte
			b, err = json.Marshal(next)
			if err == nil {
				_, err = x.kv.Create(ctx, certname, b)
			}
		default:
			var b []byte
			b, err = json.Marshal(next)
			if err == nil {
				_, err = x.kv.Update(ctx, certname, b, rev)
			}
		}
		if err == nil {
			return nil
		}
		if !worker.IsCASConflict(err) {
			return fmt.Errorf("certname index: write %s: %w", certname, err)
		}
	}
	return fmt.Errorf("certname index: write %s: %d concurrent updates, giving up", certname, maxCAS)
}

// maxCAS bounds the compare-and-set retries of one index update.
const maxCAS = 16

// Backfill indexes every certificate recorded in reg (the puppet worker's
// registry): those recorded before the index existed (an upgrade) or whose
// index write was lost. It returns how many it saw.
func (x *CertIndex) Backfill(ctx context.Context, reg *worker.Registry) (int, error) {
	recs, err := reg.List(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for vmKey, rec := range recs {
		for key := range rec.Applied {
			name, ok := strings.CutPrefix(key, prefixCert)
			if !ok || !ValidCertname(name) {
				continue
			}
			if err := x.Add(ctx, name, vmKey); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
