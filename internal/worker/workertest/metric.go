package workertest

import dto "github.com/prometheus/client_model/go"

// Metric returns the value of the harness worker's metric name (a
// counter's or gauge's value, a histogram's count) whose label has value
// (any, with label ""), 0 when there is none.
func (h *Harness) Metric(name, label, value string) float64 {
	h.T.Helper()
	mfs, err := h.Metrics.Gather()
	if err != nil {
		h.T.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if match(m, "worker", h.Worker) && (label == "" || match(m, label, value)) {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				case m.Histogram != nil:
					return float64(m.Histogram.GetSampleCount())
				}
			}
		}
	}
	return 0
}

func match(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue() == value
		}
	}
	return false
}
