package monitor

import (
	"context"
	"fmt"
	"sync"
	"text/template"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// Target is the monitor worker's worker.Target: the Icinga2 output, the
// file_sd output, or both. It is safe for concurrent use by many VMs.
type Target struct {
	cfg      Config
	log      zerolog.Logger
	owner    string
	hostTmpl *template.Template
	ic       *icinga  // nil without icinga
	sd       *sdFiles // nil without file_sd
	store    *store

	loaded   chan struct{} // closed once the file_sd entries are loaded
	loadOnce sync.Once
	guard    worker.GuardFunc
	m        *metrics
}

var (
	_ worker.Target     = (*Target)(nil)
	_ worker.Background = (*Target)(nil)
	_ worker.Collector  = (*Target)(nil)
)

// New validates cfg (after SetDefaults), reads the Icinga password and
// returns the target. With deps.JS the file_sd entries live in the shared
// bucket BucketFileSD (see RunBeside); without, in this process only.
func New(cfg Config, deps worker.Deps) (*Target, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Target{cfg: cfg, log: deps.Log.With().Str("worker", "monitor").Logger(), owner: cfg.OwnerID,
		loaded: make(chan struct{}), m: newMetrics()}
	if deps.Installation != "" {
		// Two installations sharing one Icinga never take each other's
		// hosts for their own.
		t.owner = cfg.OwnerID + "/" + deps.Installation
	}
	if c := cfg.Icinga; c != nil {
		var err error
		if t.hostTmpl, err = template.New("host").Option("missingkey=error").Parse(c.HostName); err != nil {
			return nil, fmt.Errorf("parse monitor.icinga.host_name: %w", err)
		}
		if t.ic, err = newIcinga(c, t.m); err != nil {
			return nil, err
		}
	}
	if cfg.FileSD != nil {
		t.sd = newSDFiles(cfg.FileSD, t.m)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var err error
		if t.store, err = openStore(ctx, deps.JS); err != nil {
			return nil, err
		}
		if t.store.kv == nil {
			if err := t.sd.flush(1); err != nil {
				return nil, err
			}
			close(t.loaded)
		}
	}
	return t, nil
}

// Name is "monitor".
func (t *Target) Name() string { return "monitor" }

// Desired returns the VM's host object and downtime (Icinga) and its
// entry in each file_sd job.
func (t *Target) Desired(vm *eventbus.VM) (worker.Objects, error) {
	want := worker.Objects{}
	if t.ic != nil {
		if err := t.desiredHost(vm, want); err != nil {
			return nil, err
		}
	}
	if t.sd != nil {
		t.desiredTargets(vm, want)
	}
	return want, nil
}

// Apply converges the Icinga objects, then the file_sd entries.
func (t *Target) Apply(ctx context.Context, req worker.Request) (worker.Objects, error) {
	res := req.Result()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if t.ic != nil {
		if err := t.applyHosts(ctx, req, res); err != nil {
			return res, err
		}
	}
	if t.sd != nil {
		if err := t.applyTargets(ctx, req, res); err != nil {
			return res, err
		}
	}
	return res, nil
}

type metrics struct {
	requests  *prometheus.CounterVec
	up        prometheus.Gauge
	conflicts prometheus.Counter
	writes    *prometheus.CounterVec
	targets   *prometheus.GaugeVec
}

func newMetrics() *metrics {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "vmglue", Subsystem: "monitor", Name: name, Help: help}
	}
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts(opts("icinga_requests_total",
			"Icinga2 API requests by operation and HTTP status (\"error\" when no answer came).")), []string{"op", "code"}),
		up: prometheus.NewGauge(prometheus.GaugeOpts(opts("icinga_up",
			"1 when the last Icinga2 API request got an answer, 0 when Icinga could not be reached."))),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts(opts("conflicts_total",
			"Icinga hosts left alone because vmglue does not own them."))),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts(opts("file_sd_writes_total",
			"file_sd files written, by job.")), []string{"job"}),
		targets: prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("file_sd_targets",
			"Targets in the last file_sd file written, by job.")), []string{"job"}),
	}
}

// Collectors returns vmglue_monitor_icinga_requests_total{op,code},
// vmglue_monitor_icinga_up, vmglue_monitor_conflicts_total,
// vmglue_monitor_file_sd_writes_total{job} and
// vmglue_monitor_file_sd_targets{job}.
func (t *Target) Collectors() []prometheus.Collector {
	c := []prometheus.Collector{t.m.conflicts, t.m.writes, t.m.targets}
	if t.ic != nil {
		c = append(c, t.m.requests, t.m.up)
	}
	return c
}
