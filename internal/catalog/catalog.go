// Package catalog is the one table of vmglue's workers: each line names a
// worker, its configuration section (workers.<name>, decoded strictly) and
// its constructor. Adding a worker is its package plus one line in Workers.
//
// A worker package exports a Config type with SetDefaults and Validate
// (pointer receivers; Validate names the offending key as "<name>.<key>",
// which config shows as "workers.<name>.<key>") and
//
//	func New(cfg Config, deps worker.Deps) (*Target, error)
//
// returning a worker.Target. What else the runtime needs of a target
// (resync, close, metrics, a background loop) it detects on the target: see
// the capability interfaces of package worker.
package catalog

import (
	"reflect"
	"slices"

	"github.com/vmglue/vmglue/internal/dns"
	"github.com/vmglue/vmglue/internal/lb"
	"github.com/vmglue/vmglue/internal/monitor"
	"github.com/vmglue/vmglue/internal/puppet"
	"github.com/vmglue/vmglue/internal/worker"
)

// Workers is every worker vmglue knows, in the order serve starts them.
var Workers = []Worker{
	Define("dns", dns.New),
	Define("lb", lb.New),
	Define("puppet", puppet.New),
	Define("monitor", monitor.New),
}

// Section is a worker's configuration section.
type Section interface {
	// SetDefaults fills what the file left out.
	SetDefaults()
	// Validate names the offending key as "<name>.<key>" (config adds
	// "workers.").
	Validate() error
}

// Worker is one line of the table.
type Worker struct {
	// Name is the worker's name: its config section workers.<name>, its
	// durable consumer, registry and metrics label.
	Name string
	// Verifies says the worker's target reads its objects back
	// (worker.Verifier): replay, reconcile and the periodic verification
	// repair its drift.
	Verifies bool
	// config is the Config type (a struct) of the worker's package.
	config reflect.Type
	build  func(cfg Section, deps worker.Deps) (worker.Target, error)
}

// Define makes the table line of a worker from its package's New; the
// section type is New's Config.
func Define[C any, PC interface {
	*C
	Section
}, T worker.Target](name string, newFn func(C, worker.Deps) (T, error)) Worker {
	var target T
	_, verifies := any(target).(worker.Verifier)
	return Worker{
		Name:     name,
		Verifies: verifies,
		config:   reflect.TypeFor[C](),
		build: func(cfg Section, deps worker.Deps) (worker.Target, error) {
			return newFn(*cfg.(PC), deps)
		},
	}
}

// NewSection returns a new, zero configuration section of the worker (a
// pointer to its package's Config).
func (w Worker) NewSection() Section {
	return reflect.New(w.config).Interface().(Section)
}

// SectionType is the pointer type NewSection returns.
func (w Worker) SectionType() reflect.Type { return reflect.PointerTo(w.config) }

// New builds the worker's target from its section (as NewSection returned
// it, decoded, defaulted and validated).
func (w Worker) New(cfg Section, deps worker.Deps) (worker.Target, error) {
	return w.build(cfg, deps)
}

// Lookup returns the worker called name.
func Lookup(name string) (Worker, bool) {
	i := slices.IndexFunc(Workers, func(w Worker) bool { return w.Name == name })
	if i < 0 {
		return Worker{}, false
	}
	return Workers[i], true
}

// Names lists every known worker's name, in table order.
func Names() []string {
	n := make([]string, len(Workers))
	for i, w := range Workers {
		n[i] = w.Name
	}
	return n
}

// Verifying returns the names of the workers that can verify (Verifies).
func Verifying() []string {
	var out []string
	for _, w := range Workers {
		if w.Verifies {
			out = append(out, w.Name)
		}
	}
	return out
}
