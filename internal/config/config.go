// Package config is vmglue's configuration file: one struct, strict YAML
// decoding (an unknown key is an error), defaults, and Validate naming the
// offending key. Secrets are read from files or the environment and never
// printed: String masks them.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/catalog"
	"github.com/vmglue/vmglue/internal/sweep"
	"github.com/vmglue/vmglue/internal/worker"
)

// Config is the whole configuration of `vmglue serve` and the ops commands.
type Config struct {
	Log     Log       `yaml:"log"`
	NATS    NATS      `yaml:"nats"`
	Metrics Metrics   `yaml:"metrics"`
	Runtime Runtime   `yaml:"runtime"`
	Workers Workers   `yaml:"workers"`
	Bridge  Bridges   `yaml:"bridge"`
	Listen  Listeners `yaml:"listen,omitempty"`
	Web     Web       `yaml:"web"`
	// SecretAttributes are name patterns of secret VM attributes added to
	// eventbus.DefaultSecretPatterns ("!" exempts): the ops commands
	// print such attributes as (redacted). The hook has its own setting
	// (VMGLUE_SECRET_ATTRIBUTES): it redacts them before the bus.
	SecretAttributes []string `yaml:"secret_attributes"`
	// Sweep is the periodic sweep of the clouds' APIs (nil: no sweep).
	Sweep *sweep.Config `yaml:"sweep"`
	// Installation is this installation's identity, in every ownership
	// marker the workers write (DNS TXT, HAProxy server names with
	// <installation>, monitoring). Empty: serve generates one on first
	// start and keeps it on the bus (eventbus.Installation); set it to
	// keep the identity across a rebuilt NATS.
	Installation string `yaml:"installation"`
}

// SecretNames returns the secret attribute names of the configuration
// (the defaults plus secret_attributes; Validate checked them).
func (c *Config) SecretNames() *eventbus.SecretNames {
	n, err := eventbus.NewSecretNames(c.SecretAttributes)
	if err != nil {
		return nil // the defaults
	}
	return n
}

// Log configures zerolog.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json, console, auto (console on a terminal)
}

// Metrics is the HTTP listener of /metrics and /healthz. An absent listen
// is DefaultMetricsListen; an explicit "" turns it off.
type Metrics struct {
	Listen string `yaml:"listen"`
	// SpoolDirs are hook spool directories on this machine whose events
	// and quarantined files serve counts (vmglue_spool_events,
	// vmglue_spool_quarantined_files); serve must be able to read them.
	SpoolDirs []string `yaml:"spool_dirs"`
}

// Runtime tunes every worker's runtime. SetDefaults fills it with the
// worker runtime's defaults (worker.Default*), so that `vmglue config check`
// prints what serve uses.
type Runtime struct {
	Concurrency     int           `yaml:"concurrency"`
	MaxDeliver      int           `yaml:"max_deliver"`
	BackoffBase     time.Duration `yaml:"backoff_base"`
	BackoffMax      time.Duration `yaml:"backoff_max"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	ResyncInterval  time.Duration `yaml:"resync_interval"`
	// VerifyInterval is how often serve converges every VM of each
	// verifying worker's registry with verification (reads the target
	// back, repairs drift). Default 0: off.
	VerifyInterval time.Duration `yaml:"verify_interval"`
	// VerifyIntervals overrides VerifyInterval per worker (the more
	// specific wins; negative turns it off for that worker).
	VerifyIntervals map[string]time.Duration `yaml:"verify_intervals,omitempty"`
	// VerifyRate bounds a periodic verification pass to this many VMs per
	// second, per worker. Default 20.
	VerifyRate float64 `yaml:"verify_rate"`
	// CompactAfter is how long a deleted VM's full snapshot and its empty
	// registry records are kept before they shrink to a tombstone
	// (worker.Compact). Default 168h.
	CompactAfter time.Duration `yaml:"compact_after"`
	// CompactInterval is how often serve compacts. Default 1h; negative
	// disables compaction.
	CompactInterval time.Duration `yaml:"compact_interval"`
	// TombstoneTTL is how long a deleted VM's tombstone stays after its
	// compaction (worker.ForgetTombstones, run with the compaction).
	// Default nats.stream.max_age + 24h; at least nats.stream.max_age, so
	// that no event of the VM is still in the stream to bring it back;
	// negative keeps tombstones for ever.
	TombstoneTTL time.Duration `yaml:"tombstone_ttl"`
	// TeardownOrder is, per worker and snapshot kind, the workers that must
	// have finished with a VM first (read from their registries). A worker
	// left out keeps DefaultTeardownOrder's line; one named with {} waits
	// for nobody.
	TeardownOrder TeardownOrder `yaml:"teardown_order"`
	// TeardownWait bounds such a wait: after it the worker goes on, logs
	// a warning and counts vmglue_worker_teardown_timeouts_total.
	// Default 2m.
	TeardownWait time.Duration `yaml:"teardown_wait"`
}

// Defaults of Runtime's compaction.
const (
	DefaultCompactAfter    = 7 * 24 * time.Hour
	DefaultCompactInterval = time.Hour
)

// DefaultMetricsListen is the default address of /metrics and /healthz.
const DefaultMetricsListen = "127.0.0.1:9464"

// DefaultDataDir is where the embedded server keeps its data: /var/lib/vmglue
// for root, else $XDG_STATE_HOME/vmglue (~/.local/state/vmglue).
func DefaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/vmglue"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "vmglue")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "vmglue-data"
	}
	return filepath.Join(home, ".local", "state", "vmglue")
}

// New returns the configuration before a file is decoded over it: what a
// zero value cannot tell from an explicit setting is filled here
// (metrics.listen: absent is the default, "" turns metrics off).
func New() *Config {
	return &Config{Metrics: Metrics{Listen: DefaultMetricsListen}}
}

// SetDefaults fills what the file left out (after New and decoding).
func (c *Config) SetDefaults() {
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "auto"
	}
	if c.NATS.URL == "" {
		if c.NATS.Embedded.Listen == "" {
			c.NATS.Embedded.Listen = eventbus.DefaultListen
		}
		if c.NATS.Embedded.DataDir == "" {
			c.NATS.Embedded.DataDir = defaultDataDir()
		}
		if c.NATS.Embedded.Auth == "" {
			c.NATS.Embedded.Auth = AuthRoles
		}
	}
	c.NATS.Stream.SetDefaults()
	c.Runtime.setDefaults()
	if c.Runtime.TombstoneTTL == 0 {
		c.Runtime.TombstoneTTL = c.NATS.Stream.MaxAge + 24*time.Hour
	}
	c.Workers.setDefaults()
	if c.Sweep != nil {
		// The sweep names a server as the bridge of the same cloud does.
		for i, o := range c.Sweep.OpenStack {
			if b := c.Bridge.OpenStack; o.Name == "" && b != nil && b.Cloud == o.Cloud {
				c.Sweep.OpenStack[i].Name = b.Name
			}
		}
		c.Sweep.SetDefaults()
		c.Sweep.SecretNames = c.SecretNames()
	}
	c.Bridge.setDefaults()
	c.Listen.setDefaults()
}

func (r *Runtime) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if r.Concurrency == 0 {
		r.Concurrency = worker.DefaultConcurrency
	}
	if r.MaxDeliver == 0 {
		r.MaxDeliver = worker.DefaultMaxDeliver
	}
	def(&r.BackoffBase, worker.DefaultBackoffBase)
	def(&r.BackoffMax, worker.DefaultBackoffMax)
	def(&r.ShutdownTimeout, worker.DefaultShutdownTimeout)
	def(&r.ResyncInterval, worker.DefaultResyncInterval)
	def(&r.CompactAfter, DefaultCompactAfter)
	def(&r.CompactInterval, DefaultCompactInterval)
	def(&r.TeardownWait, worker.DefaultTeardownWait)
	r.TeardownOrder.setDefaults()
	if r.VerifyRate == 0 {
		r.VerifyRate = worker.DefaultVerifyRate
	}
}

// WorkerOptions returns the worker options of the named worker: Options
// with the worker's own verification interval when verify_intervals has
// one.
func (r Runtime) WorkerOptions(name string) worker.Options {
	o := r.Options()
	if d, ok := r.VerifyIntervals[name]; ok {
		o.VerifyInterval = d
	}
	return o
}

// Options turns the runtime section into worker options; what the section
// does not hold (ack wait, instance id, ...) worker.Options.SetDefaults
// fills.
func (r Runtime) Options() worker.Options {
	o := worker.Options{
		Concurrency:     r.Concurrency,
		MaxDeliver:      r.MaxDeliver,
		ShutdownTimeout: r.ShutdownTimeout,
		ResyncInterval:  r.ResyncInterval,
		VerifyInterval:  r.VerifyInterval,
		VerifyRate:      r.VerifyRate,
		TeardownWait:    r.TeardownWait,
	}
	o.Backoff.Base = r.BackoffBase
	o.Backoff.Max = r.BackoffMax
	return o
}

// Validate checks the configuration and names the offending key.
func (c *Config) Validate() error {
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: %q, want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console", "auto":
	default:
		return fmt.Errorf("log.format: %q, want json, console or auto", c.Log.Format)
	}
	if err := c.NATS.Stream.Validate(); err != nil {
		return err
	}
	if err := c.NATS.validate(); err != nil {
		return err
	}
	o := c.Runtime.Options()
	o.SetDefaults()
	if err := o.Validate(); err != nil {
		return fmt.Errorf("runtime.%w", err)
	}
	for name := range c.Runtime.VerifyIntervals {
		if _, ok := catalog.Lookup(name); !ok {
			return fmt.Errorf("runtime.verify_intervals.%s: unknown worker, want one of %s", name, strings.Join(catalog.Names(), ", "))
		}
	}
	if err := c.Runtime.TeardownOrder.validate(); err != nil {
		return err
	}
	if c.Runtime.CompactAfter < 0 {
		return errors.New("runtime.compact_after: must not be negative")
	}
	if ttl := c.Runtime.TombstoneTTL; ttl > 0 && ttl < c.NATS.Stream.MaxAge {
		return fmt.Errorf("runtime.tombstone_ttl: %s is shorter than nats.stream.max_age %s: a replayed event could bring a deleted VM back", ttl, c.NATS.Stream.MaxAge)
	}
	if c.Installation != "" && !eventbus.ValidInstallation(c.Installation) {
		return fmt.Errorf("installation: %q: use 1-32 lower-case letters, digits and '-'", c.Installation)
	}
	if _, err := eventbus.NewSecretNames(c.SecretAttributes); err != nil {
		return fmt.Errorf("secret_attributes: %w", err)
	}
	if c.Sweep != nil {
		if err := c.Sweep.Validate(); err != nil {
			return err
		}
	}
	if err := c.Bridge.validate(); err != nil {
		return err
	}
	if err := c.Listen.validate(); err != nil {
		return err
	}
	if err := c.Web.validate(); err != nil {
		return err
	}
	return c.Workers.validate()
}

// Load reads, decodes strictly, defaults and validates a config file. An
// empty path gives the defaults.
func Load(path string) (*Config, error) {
	c := New()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if err := decode(b, c); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", displayPath(path), err)
	}
	return c, nil
}

func displayPath(p string) string {
	if p == "" {
		return "(defaults)"
	}
	return p
}

func decode(b []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("decode: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return nil
}

// String prints the effective configuration as YAML. Secrets only ever live
// in files or the environment, so nothing here is secret; URLs are redacted.
func (c *Config) String() string {
	cp := *c
	cp.NATS.URL = eventbus.RedactURL(cp.NATS.URL)
	cp.Bridge = cp.Bridge.redacted()
	b, err := yaml.Marshal(&cp)
	if err != nil {
		return fmt.Sprintf("config: %v", err)
	}
	return string(b)
}
