package eventbus

import (
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// IsNoKey reports whether err from a KV Get or Update says the key holds
// nothing: never written (jetstream.ErrKeyNotFound) or deleted or purged
// (jetstream.ErrKeyDeleted).
func IsNoKey(err error) bool {
	return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)
}
