package puppet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// Binding says which VM a certname's certificate was signed for: `vmglue
// autosign` writes it when it signs, before Puppet Server issues the
// certificate, and the puppet worker revokes a certificate only for the VM
// its binding names, and only when the CA's certificate carries the bound
// public key. Neither a rename nor a tenant's choice of name moves it.
type Binding struct {
	// VM is the key "<cloud>.<vmid>" of the VM the certificate is for.
	VM string `json:"vm"`
	// PublicKey is PublicKeyID of the CSR autosign signed.
	PublicKey string `json:"public_key"`
	// Signed is when autosign decided.
	Signed time.Time `json:"signed"`
}

// PublicKeyID identifies a key pair: "sha256:" and the hex SHA-256 of its
// DER SubjectPublicKeyInfo, the same in a CSR and in the certificate
// issued for it.
func PublicKeyID(spki []byte) string {
	sum := sha256.Sum256(spki)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ErrHeld is returned by Bind when another live VM holds the certname.
var ErrHeld = errors.New("certname held by another live VM")

// Bindings is the KV bucket eventbus.BucketCertBindings (key the certname,
// value a Binding), with the snapshots that say whether a VM is live.
type Bindings struct {
	kv    jetstream.KeyValue
	snaps *worker.Snapshots
	now   func() time.Time
}

// OpenBindings opens the provisioned buckets of bindings and snapshots.
func OpenBindings(ctx context.Context, js jetstream.JetStream) (*Bindings, error) {
	kv, err := js.KeyValue(ctx, eventbus.BucketCertBindings)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", eventbus.BucketCertBindings, err)
	}
	snaps, err := worker.OpenSnapshots(ctx, js)
	if err != nil {
		return nil, err
	}
	return &Bindings{kv: kv, snaps: snaps, now: time.Now}, nil
}

// Get returns the binding of certname (nil when there is none) and its
// revision.
func (b *Bindings) Get(ctx context.Context, certname string) (*Binding, uint64, error) {
	ctx, cancel := worker.RequestContext(ctx) // a lease context has no timeout of its own
	defer cancel()
	if !ValidCertname(certname) {
		return nil, 0, fmt.Errorf("certificate binding: %q: %w", excerpt([]byte(certname)), ErrInvalidCertname)
	}
	e, err := b.kv.Get(ctx, certname)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("certificate binding: get %s: %w", certname, err)
	}
	var bd Binding
	if err := json.Unmarshal(e.Value(), &bd); err != nil {
		return nil, 0, fmt.Errorf("certificate binding: decode %s: %w", certname, err)
	}
	return &bd, e.Revision(), nil
}

// Bind records that the certificate of certname is signed for vm with the
// public key publicKey (PublicKeyID). It refuses, wrapping ErrHeld, a
// certname bound to another VM that is still live: a deleted one's
// binding is replaced (its certificate is gone, else the CA would not take
// the new request). Binding the same VM again records the new key.
func (b *Bindings) Bind(ctx context.Context, certname string, vm *eventbus.VM, publicKey string) error {
	ctx, cancel := worker.RequestContext(ctx) // a lease context has no timeout of its own
	defer cancel()
	next, err := json.Marshal(Binding{VM: vm.Key(), PublicKey: publicKey, Signed: b.now().UTC()})
	if err != nil {
		return fmt.Errorf("certificate binding: encode: %w", err)
	}
	for range maxCAS {
		cur, rev, err := b.Get(ctx, certname)
		if err != nil {
			return err
		}
		if cur != nil && cur.VM != vm.Key() {
			holder, _, err := b.snaps.Get(ctx, cur.VM)
			if err != nil {
				return fmt.Errorf("certificate binding: holder of %s: %w", certname, err)
			}
			if holder != nil && !holder.Deleted() {
				return fmt.Errorf("%w: vm %s (%s) has held it since %s", ErrHeld, cur.VM, holder.Kind, cur.Signed.Format(time.RFC3339))
			}
		}
		if rev == 0 {
			_, err = b.kv.Create(ctx, certname, next)
		} else {
			_, err = b.kv.Update(ctx, certname, next, rev)
		}
		if err == nil {
			return nil
		}
		if !worker.IsCASConflict(err) {
			return fmt.Errorf("certificate binding: write %s: %w", certname, err)
		}
	}
	return fmt.Errorf("certificate binding: write %s: %d concurrent updates, giving up", certname, maxCAS)
}

// Release removes the binding of certname if it is still vmKey's (its
// certificate was cleaned). Another VM's binding stays.
func (b *Bindings) Release(ctx context.Context, certname, vmKey string) error {
	ctx, cancel := worker.RequestContext(ctx) // a lease context has no timeout of its own
	defer cancel()
	cur, rev, err := b.Get(ctx, certname)
	if err != nil || cur == nil || cur.VM != vmKey {
		return err
	}
	if err := b.kv.Delete(ctx, certname, jetstream.LastRevision(rev)); err != nil && !worker.IsCASConflict(err) {
		return fmt.Errorf("certificate binding: delete %s: %w", certname, err)
	}
	return nil
}
