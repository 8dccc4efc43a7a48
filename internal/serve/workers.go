package serve

import (
	"context"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/internal/catalog"
	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/worker"
)

type runner interface {
	Run(ctx context.Context) error
}

// runFunc is a runner made of a function.
type runFunc func(ctx context.Context) error

func (f runFunc) Run(ctx context.Context) error { return f(ctx) }

// targetOptions are the runtime options of target t: the more specific
// setting wins, so a target's own resync interval (workers.lb.
// resync_interval) overrides runtime.resync_interval.
func targetOptions(cfg *config.Config, t worker.Target) worker.Options {
	o := cfg.Runtime.WorkerOptions(t.Name())
	if ri, ok := t.(worker.ResyncIntervaler); ok && ri.ResyncInterval() != 0 {
		o.ResyncInterval = ri.ResyncInterval()
	}
	return o
}

// newRunners builds one runner per configured worker, plus one per
// background loop a target has (worker.Background), and detects the other
// optional capabilities of each target.
func newRunners(cfg *config.Config, js jetstream.JetStream, installation string, reg prometheus.Registerer, log zerolog.Logger) ([]runner, func(), error) {
	var runners []runner
	var closers []io.Closer
	cleanup := func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}
	fail := func(name string, err error) ([]runner, func(), error) {
		cleanup()
		return nil, nil, fmt.Errorf("worker %s: %w", name, err)
	}
	byName := map[string]*worker.Runner{}
	for _, name := range cfg.Workers.Names() {
		cw, _ := catalog.Lookup(name)
		// Targets and the runtime add the "worker" field themselves.
		t, err := cw.New(cfg.Workers[name], worker.Deps{Log: log, JS: js, Installation: installation})
		if err != nil {
			return fail(name, err)
		}
		if c, ok := t.(io.Closer); ok {
			closers = append(closers, c)
		}
		if c, ok := t.(worker.Collector); ok {
			for _, m := range c.Collectors() {
				if err := reg.Register(m); err != nil {
					return fail(name, fmt.Errorf("register metrics: %w", err))
				}
			}
		}
		r, err := worker.New(js, t, targetOptions(cfg, t), log, reg)
		if err != nil {
			return fail(name, err)
		}
		if g, ok := t.(worker.Guarded); ok {
			// Resync repairs only under the VM's lease, with its current
			// record: safe beside the converges of another vmglue process.
			g.SetGuard(r.Guard)
		}
		runners = append(runners, r)
		byName[name] = r
		if bg, ok := t.(worker.Background); ok {
			runners = append(runners, runFunc(func(ctx context.Context) error { bg.RunBeside(ctx, r); return nil }))
		}
	}
	orderTeardown(cfg, byName, log)
	return runners, cleanup, nil
}

// orderTeardown declares runtime.teardown_order on the runners: per kind,
// the configured workers each must wait for (worker.Runner.After). A
// dependency that is not configured here is left out: nothing waits for
// a worker that does not run.
func orderTeardown(cfg *config.Config, byName map[string]*worker.Runner, log zerolog.Logger) {
	names := cfg.Workers.Names()
	for _, name := range names {
		for kind, deps := range cfg.Runtime.TeardownOrder.For(name, names) {
			for _, d := range deps {
				byName[name].After(kind, byName[d])
			}
			log.Info().Str("worker", name).Str("kind", kind).Strs("after", deps).
				Dur("teardown_wait", cfg.Runtime.TeardownWait).Msg("teardown order")
		}
	}
}
