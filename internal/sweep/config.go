package sweep

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/opennebula/api"
	"github.com/vmglue/vmglue/hooks/openstack"
)

// Config is the `sweep:` section: the clouds whose API is swept and the
// rules of deletion.
//
//	sweep:
//	  interval: 15m            # serve sweeps every cloud this often (and at start); 0 = 15m, negative = only `vmglue sweep`
//	  missing_sweeps: 2        # a known VM is deleted after missing from this many successful sweeps in a row
//	  max_delete_share: 0.25   # more deletions than this share of the cloud's known VMs are held back unless --force
//	  max_delete_floor: 3      # ... but this many deletions per sweep are always allowed (a small cloud's); -1: none (0 = the default)
//	  opennebula:
//	    - cloud: one                               # the hook's VMGLUE_CLOUD
//	      endpoint: http://127.0.0.1:2633/RPC2     # default $ONE_XMLRPC, else http://localhost:2633/RPC2
//	      auth_file: /etc/vmglue/one_auth          # "user:password"; default $ONE_AUTH, else ~/.one/one_auth
//	      ca_file: ""                              # PEM bundle for an https endpoint
//	      timeout: 60s                             # per call (one page)
//	      page_size: 500                           # VMs per one.vmpool.infoextended call
type Config struct {
	Interval       time.Duration `yaml:"interval"`
	MissingSweeps  int           `yaml:"missing_sweeps"`
	MaxDeleteShare float64       `yaml:"max_delete_share"`
	MaxDeleteFloor int           `yaml:"max_delete_floor"`
	// ChallengeKeyFile and ChallengeAttribute are the hook's (defaults
	// /etc/vmglue/challenge.key and PUPPET_CHALLENGE): the sweep keeps the
	// challenge as the same MAC the hook sends, so both make the same
	// snapshot. Without the key file the attribute is left out, as the
	// hook does then. The key is read once, when serve or the command starts.
	ChallengeKeyFile   string            `yaml:"challenge_key_file"`
	ChallengeAttribute string            `yaml:"challenge_attribute"`
	OpenNebula         []OpenNebulaCloud `yaml:"opennebula"`
	OpenStack          []OpenStackCloud  `yaml:"openstack"`
	// SecretNames are the configuration's secret attribute names (the
	// top-level secret_attributes; nil: the defaults), set by the config.
	SecretNames *eventbus.SecretNames `yaml:"-"`
}

// DefaultInterval is serve's sweep interval.
const DefaultInterval = 15 * time.Minute

// OpenNebulaCloud is one OpenNebula front-end to sweep.
type OpenNebulaCloud struct {
	Cloud    string        `yaml:"cloud"`
	Endpoint string        `yaml:"endpoint"`
	AuthFile string        `yaml:"auth_file"`
	CAFile   string        `yaml:"ca_file"`
	Timeout  time.Duration `yaml:"timeout"`
	PageSize int           `yaml:"page_size"`
}

// SetDefaults fills what the file left out.
func (c *Config) SetDefaults() {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.MissingSweeps == 0 {
		c.MissingSweeps = DefaultMissingSweeps
	}
	if c.MaxDeleteShare == 0 {
		c.MaxDeleteShare = DefaultMaxDeleteShare
	}
	if c.MaxDeleteFloor == 0 {
		c.MaxDeleteFloor = DefaultMaxDeleteFloor
	}
	if c.ChallengeKeyFile == "" {
		c.ChallengeKeyFile = eventbus.DefaultChallengeKeyFile
	}
	if c.ChallengeAttribute == "" {
		c.ChallengeAttribute = eventbus.DefaultChallengeAttribute
	}
	for i := range c.OpenStack {
		if c.OpenStack[i].Name == "" {
			c.OpenStack[i].Name = openstack.NameDisplayName
		}
	}
}

// protect returns how the sweep keeps secrets off the bus: the hook's
// policy, the challenge key read once (lazily: only a VM with the
// attribute needs it).
func (c *Config) protect() func(*eventbus.VM) {
	var (
		once sync.Once
		key  []byte
		err  error
	)
	s := eventbus.Secrets{Names: c.SecretNames, ChallengeAttribute: c.ChallengeAttribute,
		ChallengeKey: func() ([]byte, error) {
			once.Do(func() { key, err = eventbus.ReadChallengeKey(c.ChallengeKeyFile) })
			return key, err
		}}
	return func(vm *eventbus.VM) { s.Protect(vm) }
}

// Validate names the offending key (relative to the section).
func (c *Config) Validate() error {
	var errs []error
	if c.MissingSweeps < 1 {
		errs = append(errs, fmt.Errorf("sweep.missing_sweeps: %d, want at least 1", c.MissingSweeps))
	}
	if c.MaxDeleteShare <= 0 || c.MaxDeleteShare > 1 {
		errs = append(errs, fmt.Errorf("sweep.max_delete_share: %g, want more than 0 and at most 1", c.MaxDeleteShare))
	}
	seen := map[string]bool{}
	cloud := func(key, name string) {
		switch {
		case !eventbus.ValidToken(name):
			errs = append(errs, fmt.Errorf("%s.cloud: %q, want 1-128 letters, digits, '-' and '_' (the hook's VMGLUE_CLOUD)", key, name))
		case seen[name]:
			errs = append(errs, fmt.Errorf("%s.cloud: %s is swept twice", key, name))
		}
		seen[name] = true
	}
	for i, o := range c.OpenNebula {
		key := fmt.Sprintf("sweep.opennebula[%d]", i)
		cloud(key, o.Cloud)
		if o.Timeout < 0 || o.PageSize < 0 {
			errs = append(errs, fmt.Errorf("%s: timeout and page_size must not be negative", key))
		}
	}
	for i, o := range c.OpenStack {
		key := fmt.Sprintf("sweep.openstack[%d]", i)
		cloud(key, o.Cloud)
		if o.Timeout < 0 {
			errs = append(errs, fmt.Errorf("%s.timeout: must not be negative", key))
		}
		if o.Name != openstack.NameDisplayName && o.Name != openstack.NameHostname {
			errs = append(errs, fmt.Errorf("%s.name: %q, want display_name or hostname", key, o.Name))
		}
	}
	if len(seen) == 0 {
		errs = append(errs, errors.New("sweep: no cloud: add sweep.opennebula or sweep.openstack entries"))
	}
	// One line, as every config error.
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}

// Options are the deletion rules of the section.
func (c *Config) Options() Options {
	return Options{MissingSweeps: c.MissingSweeps, MaxDeleteShare: c.MaxDeleteShare, MaxDeleteFloor: c.MaxDeleteFloor}
}

// Clouds lists the names of the configured clouds, in config order.
func (c *Config) Clouds() []string {
	var out []string
	for _, o := range c.OpenNebula {
		out = append(out, o.Cloud)
	}
	for _, o := range c.OpenStack {
		out = append(out, o.Cloud)
	}
	return out
}

func (o *OpenNebulaCloud) options(protect func(*eventbus.VM)) api.Options {
	return api.Options{Endpoint: o.Endpoint, AuthFile: o.AuthFile, CAFile: o.CAFile, Timeout: o.Timeout, PageSize: o.PageSize, Protect: protect}
}
