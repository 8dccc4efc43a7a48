// Package ops answers the operator's questions about vmglue from what the
// bus holds: the state of the streams and workers (GetStatus), the VMs and
// each worker's state for them (ListVMs), one VM's timeline, records and
// dead letters (VMReports), the stored events (Tail), and the two repairs
// (Replay, SettleDeadLetters).
//
// Every function takes a JetStream handle and a request struct and returns
// data; none prints. The `vmglue` command line (internal/cli) calls them and
// formats the result as text or JSON; the operator's page of `vmglue serve`
// calls the same functions. Secret VM attributes are redacted
// (eventbus.RedactedValue) unless a request's ShowSecrets says otherwise.
//
// Errors about a request name the option as the command line spells it
// (--cloud, --since): the command line prints them unchanged.
package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
)

// StoredEvent is one message of VMGLUE_EVENTS: a VM's timeline entry, or an
// event a replay republishes.
type StoredEvent struct {
	Seq    uint64          `json:"seq"`
	Stored time.Time       `json:"stored"`
	Event  *eventbus.Event `json:"event,omitempty"`
	Error  string          `json:"error,omitempty"` // an unreadable event
}

// storedEvent decodes a message of VMGLUE_EVENTS, its secret attributes
// redacted unless showSecrets.
func storedEvent(m jetstream.Msg, seq uint64, showSecrets bool, names *eventbus.SecretNames) StoredEvent {
	e := StoredEvent{Seq: seq}
	if md, err := m.Metadata(); err == nil {
		e.Stored = md.Timestamp.UTC()
	}
	ev, err := eventbus.Unmarshal(m.Data())
	if err != nil {
		e.Error = err.Error()
		return e
	}
	if !showSecrets {
		vm, _ := names.Redact(&ev.Data)
		ev.Data = *vm
	}
	e.Event = &ev
	return e
}

// bucketKeys lists the keys of a KV bucket matching filter. The first
// error is stored in *errp (and nothing returned), so that calls chain.
func bucketKeys(ctx context.Context, js jetstream.JetStream, bucket, filter string, errp *error) []string {
	if *errp != nil {
		return nil
	}
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		*errp = fmt.Errorf("open bucket %s: %w", bucket, err)
		return nil
	}
	l, err := kv.ListKeysFiltered(ctx, filter)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		*errp = fmt.Errorf("list %s: %w", bucket, err)
		return nil
	}
	defer l.Stop()
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	return keys
}

// subjectToken returns the i-th dot-separated token of s, "?" if missing.
func subjectToken(s string, i int) string {
	t := strings.Split(s, ".")
	if i >= len(t) {
		return "?"
	}
	return t[i]
}

// checkToken validates the value of the option name as a subject token.
func checkToken(v, name string) error {
	if !eventbus.ValidToken(v) {
		return fmt.Errorf("%s %q: use letters, digits, '-' and '_'", name, v)
	}
	return nil
}
