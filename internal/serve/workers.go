package serve

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/dns"
	"github.com/vmglue/vmglue/internal/lb"
	"github.com/vmglue/vmglue/internal/puppet"
	"github.com/vmglue/vmglue/internal/worker"
)

type runner interface {
	Run(ctx context.Context) error
}

// runFunc is a runner made of a function.
type runFunc func(ctx context.Context) error

func (f runFunc) Run(ctx context.Context) error { return f(ctx) }

// built is one worker's target plus what the runtime needs to know of it.
type built struct {
	target  worker.Target
	resync  time.Duration // the worker's own resync interval, 0 = runtime default
	collect []prometheus.Collector
	close   func() error
	// attach, if set, is called with the worker's runner before it runs.
	attach func(r *worker.Runner)
	// background, if set, runs beside the worker's runner r until ctx ends.
	background func(ctx context.Context, r *worker.Runner)
}

// constructors is the one map from worker name to constructor.
var constructors = map[string]func(cfg *config.Config, js jetstream.JetStream, log zerolog.Logger) (built, error){
	"dns": func(cfg *config.Config, _ jetstream.JetStream, log zerolog.Logger) (built, error) {
		t, err := dns.New(*cfg.Workers.DNS, log)
		if err != nil {
			return built{}, err
		}
		return built{target: t, collect: t.Collectors(), close: t.Close}, nil
	},
	"lb": func(cfg *config.Config, _ jetstream.JetStream, log zerolog.Logger) (built, error) {
		t, err := lb.New(*cfg.Workers.LB, log)
		if err != nil {
			return built{}, err
		}
		// A reloaded HAProxy forgot our servers: resync at once, through
		// the runner so that Resync never races a converge.
		watch := func(ctx context.Context, r *worker.Runner) {
			t.WatchReloads(ctx, func(string) { r.TriggerResync() })
		}
		// Resync repairs only under the VM's lease, with its current record:
		// safe beside the converges of another vmglue process.
		attach := func(r *worker.Runner) { t.SetGuard(r.Guard) }
		return built{target: t, resync: cfg.Workers.LB.ResyncInterval, attach: attach, background: watch, collect: t.Collectors()}, nil
	},
	"puppet": func(cfg *config.Config, js jetstream.JetStream, log zerolog.Logger) (built, error) {
		t, err := puppet.New(*cfg.Workers.Puppet, log)
		if err != nil {
			return built{}, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		idx, err := puppet.OpenCertIndex(ctx, js)
		if err != nil {
			return built{}, err
		}
		reg, err := worker.OpenRegistry(ctx, js, t.Name())
		if err != nil {
			return built{}, err
		}
		t.SetIndex(idx)
		bindings, err := puppet.OpenBindings(ctx, js)
		if err != nil {
			return built{}, err
		}
		t.SetBindings(bindings)
		// Certificates recorded before the index existed (an upgrade).
		plog := log.With().Str("worker", t.Name()).Logger()
		backfill := func(ctx context.Context, _ *worker.Runner) {
			n, err := idx.Backfill(ctx, reg)
			if err != nil && ctx.Err() == nil {
				plog.Error().Err(err).Msg("certname index backfill")
				return
			}
			plog.Info().Int("certnames", n).Msg("certname index backfilled")
		}
		return built{target: t, background: backfill}, nil
	},
}

// RuntimeOptions turns the config's runtime section into worker options.
func RuntimeOptions(cfg *config.Config) worker.Options {
	o := worker.Options{
		Concurrency:     cfg.Runtime.Concurrency,
		MaxDeliver:      cfg.Runtime.MaxDeliver,
		ShutdownTimeout: cfg.Runtime.ShutdownTimeout,
		ResyncInterval:  cfg.Runtime.ResyncInterval,
	}
	o.Backoff.Base = cfg.Runtime.BackoffBase
	o.Backoff.Max = cfg.Runtime.BackoffMax
	return o
}

// newRunners builds one runner per configured worker.
func newRunners(cfg *config.Config, js jetstream.JetStream, reg prometheus.Registerer, log zerolog.Logger) ([]runner, func(), error) {
	var runners []runner
	var closers []func() error
	cleanup := func() {
		for _, c := range closers {
			_ = c()
		}
	}
	for _, name := range cfg.Workers.Names() {
		// Targets and the runtime add the "worker" field themselves.
		b, err := constructors[name](cfg, js, log)
		if err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("worker %s: %w", name, err)
		}
		if b.close != nil {
			closers = append(closers, b.close)
		}
		for _, c := range b.collect {
			if err := reg.Register(c); err != nil {
				cleanup()
				return nil, nil, fmt.Errorf("worker %s: register metrics: %w", name, err)
			}
		}
		o := RuntimeOptions(cfg)
		if b.resync != 0 && o.ResyncInterval == 0 {
			o.ResyncInterval = b.resync
		}
		r, err := worker.New(js, b.target, o, log, reg)
		if err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("worker %s: %w", name, err)
		}
		if b.attach != nil {
			b.attach(r)
		}
		runners = append(runners, r)
		if bg := b.background; bg != nil {
			runners = append(runners, runFunc(func(ctx context.Context) error { bg(ctx, r); return nil }))
		}
	}
	return runners, cleanup, nil
}
