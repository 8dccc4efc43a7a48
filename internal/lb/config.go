package lb

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/vmglue/vmglue/eventbus"
)

// Defaults.
const (
	DefaultAttribute      = "LB_BACKENDS"
	DefaultServerName     = "<cloud>-<vmid>"
	DefaultDrainTimeout   = 5 * time.Minute
	DefaultDrainPoll      = 2 * time.Second
	DefaultResyncInterval = 30 * time.Second
	DefaultCommandTimeout = 5 * time.Second
	// MaxServerName is the longest server name vmglue creates.
	MaxServerName = 100
)

// Config is the configuration of the lb worker.
type Config struct {
	// Instances are the HAProxy processes to keep in sync; each one gets
	// every server. At least one.
	Instances []Instance `yaml:"instances"`
	// Attribute is the VM user attribute listing the backends of the VM,
	// "web:8080,api:9000". Default LB_BACKENDS; "-" turns it off.
	Attribute string `yaml:"attribute"`
	// Allow are the rules that open backends to the attribute: a
	// membership the attribute asks for is refused (a permanent error,
	// dead-lettered with the reason) unless a rule grants it. Empty: no
	// backend is open to the attribute.
	Allow []Allow `yaml:"allow"`
	// Labels puts VMs carrying a label into backends: label → "web:8080,...".
	// The operator's mapping is itself the grant: allow does not apply.
	Labels map[string]string `yaml:"labels"`
	// Network selects the NIC by network name; empty: the first NIC with
	// an IPv4 address.
	Network string `yaml:"network"`
	// ServerName is the server name template; <cloud>, <vmid>, <name>
	// and <installation> (worker.Deps.Installation: two installations
	// sharing an HAProxy never name a server alike) are replaced. Default
	// "<cloud>-<vmid>".
	ServerName string `yaml:"server_name"`
	// Server are the options of every server vmglue adds.
	Server ServerOptions `yaml:"server"`
	// InPoolKinds are the event kinds for which a VM is in the pool
	// (default: running). Any other kind takes it out.
	InPoolKinds []string `yaml:"in_pool_kinds"`
	// DrainTimeout bounds how long a server drains before it is removed
	// with its sessions cut. Default 5m.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// DrainPoll is the delay of the Requeue while a server drains. Default 2s.
	DrainPoll time.Duration `yaml:"drain_poll"`
	// ResyncInterval is how often Resync runs besides the reloads that
	// WatchReloads notices. Default 30s.
	ResyncInterval time.Duration `yaml:"resync_interval"`
	// CommandTimeout bounds one runtime API command. Default 5s.
	CommandTimeout time.Duration `yaml:"command_timeout"`
}

// Instance is one HAProxy process.
type Instance struct {
	// Name appears in the object keys: "<name>/<backend>/<server>".
	Name string `yaml:"name"`
	// Address of the admin socket: "unix:/run/haproxy/admin.sock" or
	// "tcp:127.0.0.1:9999".
	Address string `yaml:"address"`
}

// ServerOptions are the per-server options of "add server". Zero means
// HAProxy's default.
type ServerOptions struct {
	Weight  int           `yaml:"weight"`
	MaxConn int           `yaml:"maxconn"`
	Check   bool          `yaml:"check"`
	Inter   time.Duration `yaml:"inter"`
	Rise    int           `yaml:"rise"`
	Fall    int           `yaml:"fall"`
}

var (
	instanceRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	// nameRE is what HAProxy accepts in a proxy or server name.
	nameRE = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)
)

// SetDefaults fills the zero fields.
func (c *Config) SetDefaults() {
	if c.Attribute == "" {
		c.Attribute = DefaultAttribute
	}
	if c.ServerName == "" {
		c.ServerName = DefaultServerName
	}
	if len(c.InPoolKinds) == 0 {
		c.InPoolKinds = []string{eventbus.KindRunning}
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.DrainPoll == 0 {
		c.DrainPoll = DefaultDrainPoll
	}
	if c.ResyncInterval == 0 {
		c.ResyncInterval = DefaultResyncInterval
	}
	if c.CommandTimeout == 0 {
		c.CommandTimeout = DefaultCommandTimeout
	}
}

// Validate checks the configuration; the error names the offending key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("lb.%s: %s", key, fmt.Sprintf(format, a...)))
	}
	if len(c.Instances) == 0 {
		bad("instances", "at least one HAProxy instance is required")
	}
	seen := map[string]bool{}
	for i, in := range c.Instances {
		if !instanceRE.MatchString(in.Name) {
			bad(fmt.Sprintf("instances[%d].name", i), "%q: use 1-64 letters, digits, '-' and '_'", in.Name)
		} else if seen[in.Name] {
			bad(fmt.Sprintf("instances[%d].name", i), "%q is listed twice", in.Name)
		}
		seen[in.Name] = true
		if _, _, err := parseAddress(in.Address); err != nil {
			bad(fmt.Sprintf("instances[%d].address", i), "%v", err)
		}
	}
	if c.Attribute != "-" && strings.TrimSpace(c.Attribute) != c.Attribute {
		bad("attribute", "%q has surrounding spaces", c.Attribute)
	}
	for i, a := range c.Allow {
		a.validate(fmt.Sprintf("allow[%d]", i), bad)
	}
	labels := make([]string, 0, len(c.Labels))
	for l := range c.Labels {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		if _, err := parseMembers(c.Labels[l]); err != nil {
			bad("labels."+l, "%v", err)
		}
	}
	if c.Attribute == "-" && len(c.Labels) == 0 {
		bad("attribute", "the attribute is off and no labels are set: no VM can join a pool")
	}
	probe := renderName(c.ServerName, "vg-1", "cloud", "1", "vm")
	if !strings.Contains(c.ServerName, "<vmid>") && !strings.Contains(c.ServerName, "<name>") {
		bad("server_name", "%q must contain <vmid> or <name>", c.ServerName)
	} else if !nameRE.MatchString(probe) || strings.Contains(probe, "<") {
		bad("server_name", "%q: only letters, digits and . _ : - besides <cloud>, <vmid>, <name>, <installation>", c.ServerName)
	}
	s := c.Server
	for _, f := range []struct {
		key string
		v   int
	}{{"weight", s.Weight}, {"maxconn", s.MaxConn}, {"rise", s.Rise}, {"fall", s.Fall}} {
		if f.v < 0 {
			bad("server."+f.key, "%d is negative", f.v)
		}
	}
	if s.Weight > 256 {
		bad("server.weight", "%d is above 256", s.Weight)
	}
	if s.Inter < 0 || (s.Inter > 0 && s.Inter < time.Millisecond) {
		bad("server.inter", "%s: use at least 1ms", s.Inter)
	}
	if !s.Check && (s.Inter != 0 || s.Rise != 0 || s.Fall != 0) {
		bad("server.check", "inter, rise and fall need check: true")
	}
	for i, k := range c.InPoolKinds {
		if !eventbus.ValidKind(k) {
			bad(fmt.Sprintf("in_pool_kinds[%d]", i), "unknown kind %q", k)
		}
		if k == eventbus.KindDeleted {
			bad(fmt.Sprintf("in_pool_kinds[%d]", i), "a deleted VM is never in a pool")
		}
	}
	for _, f := range []struct {
		key string
		d   time.Duration
	}{{"drain_timeout", c.DrainTimeout}, {"drain_poll", c.DrainPoll},
		{"resync_interval", c.ResyncInterval}, {"command_timeout", c.CommandTimeout}} {
		if f.d <= 0 {
			bad(f.key, "%s: must be positive", f.d)
		}
	}
	return errors.Join(errs...)
}

// options renders the server options as "add server" keywords.
func (s ServerOptions) options() string {
	var o []string
	if s.Weight > 0 {
		o = append(o, fmt.Sprintf("weight %d", s.Weight))
	}
	if s.MaxConn > 0 {
		o = append(o, fmt.Sprintf("maxconn %d", s.MaxConn))
	}
	if s.Check {
		o = append(o, "check")
		if s.Inter > 0 {
			o = append(o, fmt.Sprintf("inter %dms", s.Inter.Milliseconds()))
		}
		if s.Rise > 0 {
			o = append(o, fmt.Sprintf("rise %d", s.Rise))
		}
		if s.Fall > 0 {
			o = append(o, fmt.Sprintf("fall %d", s.Fall))
		}
	}
	return strings.Join(o, " ")
}
