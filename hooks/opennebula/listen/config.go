package listen

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/opennebula"
)

// Config is the section listen.opennebula of vmglue's configuration.
//
//	listen:
//	  opennebula:
//	    cloud: one                        # the hook's VMGLUE_CLOUD: the same change gets the same event id
//	    endpoint: tcp://127.0.0.1:2101    # one_hm's PUB socket (HM_MAD -p, -b)
//	    filters: ["EVENT STATE VM/"]      # key prefixes, each ending in "/"
//	    spool_dir: /var/lib/vmglue/spool/listen-opennebula-one
//	    sweep_interval: 15m               # also on start and every reconnect; negative: only then
//	    challenge_attribute: PUPPET_CHALLENGE          # as the hook's VMGLUE_CHALLENGE_ATTRIBUTE
//	    challenge_key_file: /etc/vmglue/challenge.key  # as the hook's VMGLUE_CHALLENGE_KEY_FILE
type Config struct {
	// Cloud is the cloud name in subjects and sources (default "one").
	Cloud string `yaml:"cloud"`
	// Endpoint is oned's hook manager PUB socket (default
	// tcp://127.0.0.1:2101).
	Endpoint string `yaml:"endpoint"`
	// Filters are the ZeroMQ subscriptions: prefixes of
	// "EVENT STATE VM/<STATE>/<LCM_STATE>/<id> " that end in "/" (default:
	// every VM state change).
	Filters []string `yaml:"filters"`
	// SpoolDir keeps the events NATS cannot take (the default is set by
	// vmglue's config: <data dir>/spool/listen-opennebula-<cloud>).
	SpoolDir string `yaml:"spool_dir"`
	// SweepInterval is how often the cloud's API is swept besides on start
	// and after every reconnect (default 15m; negative: only then).
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// ChallengeAttribute is sent as a MAC keyed with the key in
	// ChallengeKeyFile, and left out without the key, as the hook does
	// (defaults eventbus.DefaultChallengeAttribute and
	// eventbus.DefaultChallengeKeyFile: keep them equal to the hook's
	// VMGLUE_CHALLENGE_ATTRIBUTE and VMGLUE_CHALLENGE_KEY_FILE). Other
	// secret attributes (the top-level secret_attributes) are redacted.
	ChallengeAttribute string `yaml:"challenge_attribute"`
	ChallengeKeyFile   string `yaml:"challenge_key_file"`
}

// Defaults of Config.
const (
	DefaultCloud         = "one"
	DefaultEndpoint      = "tcp://127.0.0.1:2101"
	DefaultSweepInterval = 15 * time.Minute
)

// DefaultFilters subscribe to every VM state change, once: the
// "EVENT VM <id>/..." twin of each message is left out.
var DefaultFilters = []string{opennebula.StateKeyPrefix}

// SetDefaults fills what the file left out, except SpoolDir.
func (c *Config) SetDefaults() {
	if c.Cloud == "" {
		c.Cloud = DefaultCloud
	}
	if c.Endpoint == "" {
		c.Endpoint = DefaultEndpoint
	}
	if c.Filters == nil {
		c.Filters = append([]string(nil), DefaultFilters...)
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.ChallengeAttribute == "" {
		c.ChallengeAttribute = eventbus.DefaultChallengeAttribute
	}
	if c.ChallengeKeyFile == "" {
		c.ChallengeKeyFile = eventbus.DefaultChallengeKeyFile
	}
}

// Secrets is the secret policy of the listener: names (nil: the defaults)
// redacted, the challenge attribute sent as a MAC with the key read from
// ChallengeKeyFile when a VM has it.
func (c *Config) Secrets(names *eventbus.SecretNames) eventbus.Secrets {
	file := c.ChallengeKeyFile
	return eventbus.Secrets{Names: names, ChallengeAttribute: c.ChallengeAttribute,
		ChallengeKey: func() ([]byte, error) { return eventbus.ReadChallengeKey(file) }}
}

// Validate names the offending key.
func (c *Config) Validate() error {
	const p = "listen.opennebula."
	if !eventbus.ValidToken(c.Cloud) {
		return fmt.Errorf(p+"cloud: %q: letters, digits, '-' and '_' (the hook's VMGLUE_CLOUD)", c.Cloud)
	}
	if _, err := c.Host(); err != nil {
		return fmt.Errorf(p+"endpoint: %w", err)
	}
	if len(c.Filters) == 0 {
		return errors.New(p + "filters: at least one, e.g. " + opennebula.StateKeyPrefix)
	}
	for i, f := range c.Filters {
		if !strings.HasPrefix(f, opennebula.StateKeyPrefix) || !strings.HasSuffix(f, "/") {
			return fmt.Errorf(p+"filters[%d]: %q: want a prefix of %q<STATE>/<LCM_STATE>/<id> that ends in \"/\" (%q would also match ACTIVE/BOOT_UNKNOWN)",
				i, f, opennebula.StateKeyPrefix, opennebula.StateKeyPrefix+"ACTIVE/BOOT")
		}
	}
	if c.SpoolDir == "" {
		return errors.New(p + "spool_dir: required")
	}
	return nil
}

// Host returns the host of the endpoint, which must be tcp://host:port.
func (c *Config) Host() (string, error) {
	u, err := url.Parse(c.Endpoint)
	if err != nil || u.Scheme != "tcp" || u.Port() == "" || u.User != nil || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("%q: want tcp://host:port", c.Endpoint)
	}
	return u.Hostname(), nil
}

// Loopback reports whether the endpoint is on this machine's loopback:
// anything else needs oned's socket opened (-b in HM_MAD) and crosses a
// network unauthenticated.
func (c *Config) Loopback() bool {
	h, err := c.Host()
	if err != nil {
		return false
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
