package serve

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmglue/vmglue/hooks/spool"
)

var (
	spoolEventsDesc = prometheus.NewDesc("vmglue_spool_events",
		"Events waiting in a hook spool directory (metrics.spool_dirs) for NATS.", []string{"dir"}, nil)
	spoolQuarantinedDesc = prometheus.NewDesc("vmglue_spool_quarantined_files",
		"Files in a hook spool's quarantine directory: never sendable, never retried (vmglue spool list).", []string{"dir"}, nil)
	spoolReadableDesc = prometheus.NewDesc("vmglue_spool_readable",
		"1 when serve could read the spool directory and its quarantine at the last scrape, else 0.", []string{"dir"}, nil)
)

// spoolCounter reads hook spool directories at every scrape.
type spoolCounter struct{ dirs []string }

func spoolCollector(dirs []string) prometheus.Collector { return spoolCounter{dirs: dirs} }

func (c spoolCounter) Describe(ch chan<- *prometheus.Desc) {
	ch <- spoolEventsDesc
	ch <- spoolQuarantinedDesc
	ch <- spoolReadableDesc
}

func (c spoolCounter) Collect(ch chan<- prometheus.Metric) {
	for _, dir := range c.dirs {
		sp := spool.New(dir)
		es, err := sp.List()
		qs, qerr := sp.ListQuarantined()
		readable := 1.0
		if err != nil || qerr != nil {
			readable = 0
		}
		ch <- prometheus.MustNewConstMetric(spoolReadableDesc, prometheus.GaugeValue, readable, dir)
		if err == nil {
			ch <- prometheus.MustNewConstMetric(spoolEventsDesc, prometheus.GaugeValue, float64(len(es)), dir)
		}
		if qerr == nil {
			ch <- prometheus.MustNewConstMetric(spoolQuarantinedDesc, prometheus.GaugeValue, float64(len(qs)), dir)
		}
	}
}
