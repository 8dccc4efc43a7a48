package worker

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of one handled event, the label "result" of
// vmglue_worker_events_total.
const (
	ResultOK         = "ok"          // converged, something changed
	ResultNoop       = "noop"        // already converged
	ResultRetry      = "retry"       // transient failure, redelivered with backoff
	ResultRequeue    = "requeue"     // the target asked to converge again later
	ResultDeadLetter = "dead_letter" // permanent failure or max deliveries
	ResultSkipped    = "skipped"     // republished for another worker (HeaderForWorker)
)

// metrics are the collectors of one worker, curried with its name.
type metrics struct {
	events      *prometheus.CounterVec
	converge    prometheus.Observer
	retries     prometheus.Counter
	deadLetters prometheus.Counter
	inFlight    prometheus.Gauge
	// driftFound counts findings of verified converges, driftRepaired the
	// objects an Apply made exist again after one.
	driftFound    *prometheus.CounterVec
	driftRepaired prometheus.Counter
	verifications prometheus.Counter
	// orderWaits counts converges put off for the teardown order,
	// orderTimeouts those that went on after TeardownWait, by the worker
	// waited for.
	orderWaits    prometheus.Counter
	orderTimeouts *prometheus.CounterVec
}

// newMetrics registers the collectors on reg. Several workers share them: a
// collector registered before (by another worker) is reused.
func newMetrics(reg prometheus.Registerer, worker string) (*metrics, error) {
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmglue_worker_events_total",
		Help: "Events handled by a worker, by result (ok, noop, retry, requeue, dead_letter).",
	}, []string{"worker", "result"})
	converge := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vmglue_worker_converge_seconds",
		Help:    "Time to converge one VM for one event, lease and registry included.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	}, []string{"worker"})
	retries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmglue_worker_retries_total",
		Help: "Transient failures of a worker, each redelivered after a backoff.",
	}, []string{"worker"})
	dead := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmglue_worker_dead_letters_total",
		Help: "Events a worker gave up on and sent to the dead-letter stream.",
	}, []string{"worker"})
	inFlight := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vmglue_worker_in_flight",
		Help: "VMs a worker is converging right now.",
	}, []string{"worker"})
	found := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmglue_worker_drift_found_total",
		Help: "Objects a verification found missing, wrong, unwanted, foreign, kept (changed by hand, left so) or stray (marked as vmglue's, in no record), by worker and kind.",
	}, []string{"worker", "kind"})
	repaired := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmglue_worker_drift_repaired_total",
		Help: "Objects a verified converge found missing or wrong and made exist again, by worker.",
	}, []string{"worker"})
	verifs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmglue_worker_verifications_total",
		Help: "VMs whose target a worker read back (replayed events, reconcile, periodic verification), by worker.",
	}, []string{"worker"})
	waits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmglue_worker_teardown_waits_total",
		Help: "Converges a worker put off because workers it is ordered after had not finished with the VM (each a requeue).",
	}, []string{"worker"})
	timeouts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmglue_worker_teardown_timeouts_total",
		Help: "Converges a worker made without waiting any longer for a worker it is ordered after (after), once runtime.teardown_wait had passed.",
	}, []string{"worker", "after"})
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	var err error
	if events, err = register(reg, events); err != nil {
		return nil, err
	}
	if converge, err = register(reg, converge); err != nil {
		return nil, err
	}
	if retries, err = register(reg, retries); err != nil {
		return nil, err
	}
	if dead, err = register(reg, dead); err != nil {
		return nil, err
	}
	if inFlight, err = register(reg, inFlight); err != nil {
		return nil, err
	}
	if found, err = register(reg, found); err != nil {
		return nil, err
	}
	if repaired, err = register(reg, repaired); err != nil {
		return nil, err
	}
	if verifs, err = register(reg, verifs); err != nil {
		return nil, err
	}
	if waits, err = register(reg, waits); err != nil {
		return nil, err
	}
	if timeouts, err = register(reg, timeouts); err != nil {
		return nil, err
	}
	l := prometheus.Labels{"worker": worker}
	ev, err := events.CurryWith(l)
	if err != nil {
		return nil, fmt.Errorf("metrics of worker %s: %w", worker, err)
	}
	return &metrics{
		events:        ev,
		converge:      converge.With(l),
		retries:       retries.With(l),
		deadLetters:   dead.With(l),
		inFlight:      inFlight.With(l),
		driftFound:    found.MustCurryWith(l),
		driftRepaired: repaired.With(l),
		verifications: verifs.With(l),
		orderWaits:    waits.With(l),
		orderTimeouts: timeouts.MustCurryWith(l),
	}, nil
}

// register registers c, or returns the collector already registered under
// the same description.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	if err != nil {
		return c, fmt.Errorf("register worker metrics: %w", err)
	}
	return c, nil
}
