package sweep

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the sweeps, labelled by cloud. A nil *Metrics records nothing.
type Metrics struct {
	duration  *prometheus.HistogramVec
	listed    *prometheus.GaugeVec
	known     *prometheus.GaugeVec
	missing   *prometheus.GaugeVec
	published *prometheus.CounterVec
	heldBack  *prometheus.CounterVec
	failures  *prometheus.CounterVec
	success   *prometheus.GaugeVec
}

// NewMetrics registers the sweep metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vmglue_sweep_duration_seconds",
			Help: "Duration of a sweep of a cloud's API.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}, []string{"cloud"}),
		listed: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vmglue_sweep_vms_seen",
			Help: "VMs the cloud listed in the last successful sweep."}, []string{"cloud"}),
		known: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vmglue_sweep_vms_known",
			Help: "VMs vmglue knew alive before the last successful sweep."}, []string{"cloud"}),
		missing: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vmglue_sweep_vms_missing",
			Help: "Known VMs the last sweep missed and did not delete (yet)."}, []string{"cloud"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmglue_sweep_events_published_total",
			Help: "Snapshot events the sweep published, by reason (new, changed, deleted)."}, []string{"cloud", "reason"}),
		heldBack: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmglue_sweep_deletions_held_back_total",
			Help: "Deletions held back because they were more than max_delete_floor and max_delete_share of the known VMs allow."}, []string{"cloud"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmglue_sweep_failures_total",
			Help: "Sweeps that failed (the cloud's API, the bus)."}, []string{"cloud"}),
		success: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vmglue_sweep_last_success_timestamp_seconds",
			Help: "Unix time of the last successful sweep."}, []string{"cloud"}),
	}
	for _, c := range []prometheus.Collector{m.duration, m.listed, m.known, m.missing, m.published, m.heldBack, m.failures, m.success} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) observe(r *Result, err error) {
	if m == nil || r.DryRun {
		return
	}
	c := r.Cloud
	m.duration.WithLabelValues(c).Observe(r.Duration.Seconds())
	m.published.WithLabelValues(c, ActionNew).Add(float64(r.New))
	m.published.WithLabelValues(c, ActionChanged).Add(float64(r.Changed))
	m.published.WithLabelValues(c, ActionDeleted).Add(float64(r.Deleted))
	m.heldBack.WithLabelValues(c).Add(float64(r.HeldBack))
	if err != nil {
		m.failures.WithLabelValues(c).Inc()
		return
	}
	m.listed.WithLabelValues(c).Set(float64(r.Listed))
	m.known.WithLabelValues(c).Set(float64(r.Known))
	m.missing.WithLabelValues(c).Set(float64(r.Missing + r.HeldBack))
	m.success.WithLabelValues(c).SetToCurrentTime()
}
