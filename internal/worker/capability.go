package worker

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Deps is what a worker's New gets from the runtime besides its own
// configuration section.
type Deps struct {
	// Log is the process logger; a target adds its "worker" field itself.
	Log zerolog.Logger
	// JS is the JetStream handle, for a worker that keeps state of its own
	// in KV (the puppet worker's certname index). Unit tests that need no
	// such state leave it nil.
	JS jetstream.JetStream
	// Installation is the identity of this vmglue installation
	// (eventbus.Installation), which a target puts into every ownership
	// marker it writes so that two installations sharing a target never
	// take each other's objects for their own. Empty in unit tests that
	// do not need one: the marker then has the previous version's form.
	Installation string
}

// The optional capabilities below are interfaces the runtime (vmglue serve)
// detects on a Target by type assertion; a target implements only those it
// needs. Resyncer (runner.go) is one too; io.Closer is called when serve
// stops.

// ResyncIntervaler is a Target with its own resync interval, which wins
// over the runtime's (the more specific setting wins). Zero means: use the
// runtime's.
type ResyncIntervaler interface {
	ResyncInterval() time.Duration
}

// Collector is a Target with Prometheus metrics of its own, registered on
// serve's registry.
type Collector interface {
	Collectors() []prometheus.Collector
}

// GuardFunc runs fn for one VM under its lease with the objects applied
// for it now; Runner.Guard is one.
type GuardFunc func(ctx context.Context, vmKey string, fn func(applied Objects) error) error

// Guarded is a Target whose Resync repairs objects: it gets its Runner's
// Guard before the runtime starts, so that a repair never races a converge
// of another vmglue process.
type Guarded interface {
	SetGuard(g GuardFunc)
}

// Background is a Target with a loop that runs beside its Runner until ctx
// ends (watching HAProxy reloads, backfilling an index). r is the Runner
// converging for the target, e.g. for r.TriggerResync.
type Background interface {
	RunBeside(ctx context.Context, r *Runner)
}
