package eventbus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"

	"github.com/nats-io/nats.go/jetstream"
)

// installationRE is what an installation identity may hold: it goes into
// DNS TXT markers, HAProxy server names and monitoring variables.
var installationRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// ValidInstallation reports whether id can be an installation identity:
// 1-32 lower-case letters, digits and '-', not starting with '-'.
func ValidInstallation(id string) bool { return installationRE.MatchString(id) }

// Installation returns the identity of this vmglue installation, which
// every ownership marker of the workers carries, so that two
// installations sharing a DNS zone or an HAProxy never take each other's
// objects for their own. A configured identity wins; otherwise the one
// kept in BucketMeta, created on first start ("vg-" and 12 random hex
// digits). Several serve processes on one bus race to create it and all
// get the same. Provision must have made the bucket.
func Installation(ctx context.Context, js jetstream.JetStream, configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	kv, err := js.KeyValue(ctx, BucketMeta)
	if err != nil {
		return "", fmt.Errorf("open bucket %s: %w", BucketMeta, err)
	}
	// Read first: the ops commands (reconcile) may read the bucket but not
	// write it, and the identity exists once serve has started.
	if e, err := kv.Get(ctx, KeyInstallation); err == nil {
		return validInstallationValue(e.Value())
	} else if !IsNoKey(err) {
		return "", fmt.Errorf("read installation id: %w", err)
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate installation id: %w", err)
	}
	id := "vg-" + hex.EncodeToString(b)
	if _, err := kv.Create(ctx, KeyInstallation, []byte(id)); err == nil {
		return id, nil
	} else if !errors.Is(err, jetstream.ErrKeyExists) {
		return "", fmt.Errorf("store installation id: %w", err)
	}
	e, err := kv.Get(ctx, KeyInstallation)
	if err != nil {
		return "", fmt.Errorf("read installation id: %w", err)
	}
	return validInstallationValue(e.Value())
}

// validInstallationValue checks a stored installation id.
func validInstallationValue(v []byte) (string, error) {
	if id := string(v); ValidInstallation(id) {
		return id, nil
	}
	return "", fmt.Errorf("bucket %s key %s: %q is not an installation id", BucketMeta, KeyInstallation, v)
}
