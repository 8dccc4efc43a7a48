package bridge

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metrics are the bridge's Prometheus metrics.
type Metrics struct {
	notifications *prometheus.CounterVec
	retries       prometheus.Counter
	connects      prometheus.Counter
}

// NewMetrics registers the metrics on reg (nil: a private registry).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmglue_bridge_notifications_total",
			Help: "Nova notifications handled, by result: published, duplicate, spooled, ignored, dead_letter.",
		}, []string{"result"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmglue_bridge_retries_total",
			Help: "Failed attempts to deliver an event (neither stored nor spooled) or to store a dead letter (retried).",
		}),
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmglue_bridge_amqp_connects_total",
			Help: "Connections made to RabbitMQ (the first and every reconnect).",
		}),
	}
	for _, r := range []string{ResultPublished, ResultDuplicate, ResultSpooled, ResultIgnored, ResultDeadLetter} {
		m.notifications.WithLabelValues(r)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	reg.MustRegister(m.notifications, m.retries, m.connects)
	return m
}

func (m *Metrics) result(r string) { m.notifications.WithLabelValues(r).Inc() }

// Count returns how many notifications had result r.
func (m *Metrics) Count(r string) float64 {
	var out float64
	if c, err := m.notifications.GetMetricWithLabelValues(r); err == nil {
		out = counterValue(c)
	}
	return out
}

// Connects returns how many times the bridge connected to RabbitMQ.
func (m *Metrics) Connects() float64 { return counterValue(m.connects) }

func counterValue(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil || m.Counter == nil {
		return 0
	}
	return m.Counter.GetValue()
}
