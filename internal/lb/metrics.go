package lb

import "github.com/prometheus/client_golang/prometheus"

// metrics are the lb worker's own Prometheus metrics, beside the runtime's
// vmglue_worker_*{worker="lb"}. The HAProxy instance's name is the label
// "haproxy": "instance" is Prometheus's own target label.
type metrics struct {
	up      *prometheus.GaugeVec   // instance answered its runtime API at the last attempt
	added   *prometheus.CounterVec // servers added
	removed *prometheus.CounterVec // servers deleted, by how the drain ended
	reloads *prometheus.CounterVec // reloads or restarts noticed
}

func newMetrics() metrics {
	return metrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vmglue_lb_instance_up",
			Help: "1 if the HAProxy instance's runtime API answered at the last attempt, else 0.",
		}, []string{"haproxy"}),
		added: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmglue_lb_servers_added_total",
			Help: "Servers added to an HAProxy backend (also re-added after a reload).",
		}, []string{"haproxy"}),
		removed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmglue_lb_servers_removed_total",
			Help: "Servers deleted from an HAProxy backend; drain is drained (no sessions left) or timeout (sessions cut).",
		}, []string{"haproxy", "drain"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmglue_lb_reloads_total",
			Help: "HAProxy reloads or restarts noticed (a new worker Pid), each followed by a resync.",
		}, []string{"haproxy"}),
	}
}

// Collectors returns the target's Prometheus metrics, for the caller to
// register.
func (t *Target) Collectors() []prometheus.Collector {
	return []prometheus.Collector{t.metrics.up, t.metrics.added, t.metrics.removed, t.metrics.reloads}
}

// reached records whether an instance answered.
func (t *Target) reached(instance string, err error) {
	v := 1.0
	if err != nil && unreachable(err) {
		v = 0
	}
	t.metrics.up.WithLabelValues(instance).Set(v)
}
