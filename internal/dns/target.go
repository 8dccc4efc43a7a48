package dns

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/internal/worker"
)

// Target is the dns worker's worker.Target. It is safe for concurrent use
// by many VMs; Close stops its batchers.
type Target struct {
	cfg     Config
	log     zerolog.Logger
	tmpl    *template.Template
	forward []string // canonical forward zones, the first takes relative names
	reverse []string // canonical reverse zones
	present map[string]bool
	servers map[string][]string // zone → servers with ports
	keyName string              // fully qualified
	alg     string
	secret  string // base64; never logged or put into an error
	// installation is worker.Deps.Installation, in every marker.
	installation string

	ctx      context.Context
	cancel   context.CancelFunc
	mu       sync.Mutex
	batchers map[string]*batcher
	wg       sync.WaitGroup

	messages, records, queries atomic.Uint64
	metrics                    metrics
}

var _ worker.Target = (*Target)(nil)

// New validates cfg (after SetDefaults), reads the TSIG secret and returns
// the target.
func New(cfg Config, deps worker.Deps) (*Target, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	secret, err := cfg.secret()
	if err != nil {
		return nil, err
	}
	tmpl, err := template.New("name").Option("missingkey=error").Parse(cfg.NameTemplate)
	if err != nil {
		return nil, fmt.Errorf("parse dns.name_template: %w", err)
	}
	t := &Target{
		cfg:          cfg,
		log:          deps.Log.With().Str("worker", "dns").Logger(),
		tmpl:         tmpl,
		forward:      canonicalZones(cfg.ForwardZones),
		reverse:      canonicalZones(cfg.ReverseZones),
		present:      map[string]bool{},
		servers:      map[string][]string{},
		keyName:      mdns.CanonicalName(cfg.TSIG.Name),
		alg:          algorithms[strings.ToLower(cfg.TSIG.Algorithm)],
		secret:       secret,
		installation: deps.Installation,
		batchers:     map[string]*batcher{},
		metrics:      newMetrics(),
	}
	for _, k := range cfg.PresentKinds {
		t.present[k] = true
	}
	for _, z := range append(append([]string{}, t.forward...), t.reverse...) {
		list := cfg.Servers
		for zz, l := range cfg.ZoneServers {
			if mdns.CanonicalName(zz) == z {
				list = l
			}
		}
		for _, s := range list {
			t.servers[z] = append(t.servers[z], withPort(s))
		}
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	return t, nil
}

// Name is "dns".
func (t *Target) Name() string { return "dns" }

// Close stops the batchers; updates waiting in a batch fail. Apply must not
// be called afterwards.
func (t *Target) Close() error {
	t.cancel()
	t.wg.Wait()
	return nil
}

// batcher returns the zone's batcher, starting it on first use.
func (t *Target) batcher(zone string) *batcher {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.batchers[zone]
	if !ok {
		b = newBatcher(t, zone)
		t.batchers[zone] = b
		t.wg.Add(1)
		go func() { defer t.wg.Done(); b.run(t.ctx) }()
	}
	return b
}

// Stats counts what the target sent since New.
type Stats struct {
	Messages uint64 // UPDATE messages sent (every attempt, every server)
	Records  uint64 // RRs in the update sections of successful UPDATEs
	Queries  uint64 // ownership queries (after a failed prerequisite)
}

// Stats returns the counters.
func (t *Target) Stats() Stats {
	return Stats{Messages: t.messages.Load(), Records: t.records.Load(), Queries: t.queries.Load()}
}

type metrics struct {
	messages *prometheus.CounterVec
	records  *prometheus.CounterVec
	conflict prometheus.Counter
}

func newMetrics() metrics {
	return metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vmglue", Subsystem: "dns", Name: "update_messages_total",
			Help: "RFC 2136 UPDATE messages sent, by zone and response code (\"error\" when no response came).",
		}, []string{"zone", "rcode"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vmglue", Subsystem: "dns", Name: "update_records_total",
			Help: "Resource records in the update section of successful UPDATE messages, by zone.",
		}, []string{"zone"}),
		conflict: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "vmglue", Subsystem: "dns", Name: "conflicts_total",
			Help: "Names left alone because vmglue does not own them.",
		}),
	}
}

// Collectors returns the target's Prometheus metrics, for the caller to
// register: vmglue_dns_update_messages_total{zone,rcode},
// vmglue_dns_update_records_total{zone}, vmglue_dns_conflicts_total.
func (t *Target) Collectors() []prometheus.Collector {
	return []prometheus.Collector{t.metrics.messages, t.metrics.records, t.metrics.conflict}
}
