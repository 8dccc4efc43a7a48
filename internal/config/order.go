package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/catalog"
)

// TeardownOrder is runtime.teardown_order: per worker, per snapshot kind,
// the workers that must have finished with a VM before it converges the VM
// (worker.Runner.After). A dependency not configured under workers is
// ignored: nothing waits for a worker that does not run.
type TeardownOrder map[string]map[string][]string

// DefaultTeardownOrder is the order when teardown_order leaves a worker
// out: on delete the dns worker removes the VM's name only once the lb
// worker has drained it out of its pools (clients that resolved the name
// still reach a serving VM) and the monitor worker has removed its hosts
// and targets (no check of a vanished name alerts).
func DefaultTeardownOrder() TeardownOrder {
	return TeardownOrder{
		"dns": {eventbus.KindDeleted: {"lb", "monitor"}},
	}
}

// setDefaults adds the default order of every worker the file leaves out;
// a worker the file names keeps exactly what it says ({} : no order).
func (o *TeardownOrder) setDefaults() {
	if *o == nil {
		*o = TeardownOrder{}
	}
	for w, kinds := range DefaultTeardownOrder() {
		if _, ok := (*o)[w]; !ok {
			(*o)[w] = kinds
		}
	}
}

// For returns the order of worker name among the configured workers: per
// kind, the dependencies that run here.
func (o TeardownOrder) For(name string, configured []string) map[string][]string {
	out := map[string][]string{}
	for kind, deps := range o[name] {
		for _, d := range deps {
			if slices.Contains(configured, d) && d != name {
				out[kind] = append(out[kind], d)
			}
		}
	}
	return out
}

// validate names the offending key: unknown workers or kinds, a worker
// ordered after itself, or a cycle (workers waiting for each other would
// each wait out teardown_wait).
func (o TeardownOrder) validate() error {
	known := catalog.Names()
	key := func(parts ...string) string { return "runtime.teardown_order." + strings.Join(parts, ".") }
	for _, w := range slices.Sorted(maps.Keys(o)) {
		if !slices.Contains(known, w) {
			return fmt.Errorf("%s: unknown worker, want one of %s", key(w), strings.Join(known, ", "))
		}
		for _, kind := range slices.Sorted(maps.Keys(o[w])) {
			if !eventbus.ValidKind(kind) {
				return fmt.Errorf("%s: unknown kind, want one of %s", key(w, kind), strings.Join(eventbus.Kinds, ", "))
			}
			for i, d := range o[w][kind] {
				switch {
				case !slices.Contains(known, d):
					return fmt.Errorf("%s[%d]: unknown worker %q, want one of %s", key(w, kind), i, d, strings.Join(known, ", "))
				case d == w:
					return fmt.Errorf("%s[%d]: a worker cannot wait for itself", key(w, kind), i)
				}
			}
			if c := o.cycle(kind, w); c != nil {
				return fmt.Errorf("%s: cycle %s: these workers would wait for each other", key(w, kind), strings.Join(c, " → "))
			}
		}
	}
	return nil
}

// cycle returns a path of kind's order from w back to w, nil if none.
func (o TeardownOrder) cycle(kind, w string) []string {
	var walk func(path []string) []string
	walk = func(path []string) []string {
		for _, d := range o[path[len(path)-1]][kind] {
			if d == w {
				return append(slices.Clone(path), d)
			}
			if slices.Contains(path, d) {
				continue
			}
			if c := walk(append(path, d)); c != nil {
				return c
			}
		}
		return nil
	}
	return walk([]string{w})
}
