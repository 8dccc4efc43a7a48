package listen

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// ResultMalformed counts a message that could not be read (bad base64,
// bad XML, a key for another object, a key and message that disagree): it
// is skipped.
const ResultMalformed = "malformed"

// Metrics are the listener's Prometheus metrics.
type Metrics struct {
	messages *prometheus.CounterVec
	connects prometheus.Counter
	sweeps   *prometheus.CounterVec
}

// NewMetrics registers the metrics on reg (nil: a private registry).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmglue_listen_messages_total",
			Help: "VM state messages read from oned's ZeroMQ stream, by result: published, duplicate, spooled, lost, malformed.",
		}, []string{"result"}),
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vmglue_listen_connects_total",
			Help: "Connections made to oned's ZeroMQ stream (the first and every reconnect; each is followed by a sweep).",
		}),
		sweeps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmglue_listen_sweeps_total",
			Help: "Sweeps of the cloud's API the listener ran (on start, on reconnect, periodically), by result: ok, error.",
		}, []string{"result"}),
	}
	for _, r := range []string{"published", "duplicate", "spooled", "lost", ResultMalformed} {
		m.messages.WithLabelValues(r)
	}
	m.sweeps.WithLabelValues("ok")
	m.sweeps.WithLabelValues("error")
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	reg.MustRegister(m.messages, m.connects, m.sweeps)
	return m
}

// Messages returns how many messages had result r.
func (m *Metrics) Messages(r string) float64 { return value(m.messages.WithLabelValues(r)) }

// Connects returns how many times the listener connected to oned.
func (m *Metrics) Connects() float64 { return value(m.connects) }

// Sweeps returns how many sweeps ended with result r ("ok", "error").
func (m *Metrics) Sweeps(r string) float64 { return value(m.sweeps.WithLabelValues(r)) }

func value(c prometheus.Metric) float64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil || d.Counter == nil {
		return 0
	}
	return d.Counter.GetValue()
}
