package bridge

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/openstack"
)

// Config is the section bridge.openstack of vmglue's configuration.
type Config struct {
	// Cloud is the cloud name in subjects and sources ("openstack://<cloud>").
	Cloud string `yaml:"cloud"`
	// Name is what becomes the VM's name: display_name (default) or hostname.
	Name string     `yaml:"name"`
	AMQP AMQPConfig `yaml:"amqp"`
	// Formats are the notification formats consumed: versioned, legacy
	// (default: both; set Nova's notification_format to match).
	Formats []string `yaml:"formats"`
	// Lookup fills what a notification lacks by one Nova API call.
	Lookup LookupConfig `yaml:"lookup"`
	// SpoolDir keeps the events NATS cannot take (hooks/spool), sent when
	// it is back; the notification is acknowledged once its event is there.
	// Default: <vmglue's data directory>/spool/openstack.
	SpoolDir string `yaml:"spool_dir"`
}

// AMQPConfig is where Nova's notifications are read.
type AMQPConfig struct {
	// URLs of the RabbitMQ nodes, tried in turn: amqp://user@host:5672/vhost
	// or amqps://. The password belongs in PasswordFile or PasswordEnv.
	URLs         []string `yaml:"urls"`
	PasswordFile string   `yaml:"password_file"`
	PasswordEnv  string   `yaml:"password_env"`
	// CAFile verifies the server of an amqps:// URL (default: system roots);
	// CertFile and KeyFile are the client certificate, when the server asks.
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Exchange is Nova's control_exchange (default "nova"). It is declared
	// as oslo.messaging declares it: topic, ExchangeDurable as
	// amqp_durable_queues (default false).
	Exchange        string `yaml:"exchange"`
	ExchangeDurable bool   `yaml:"exchange_durable"`
	// Queue is vmglue's own durable queue (default "vmglue-openstack"):
	// never Nova's default notifications.info, whose messages other
	// consumers would take.
	Queue string `yaml:"queue"`
	// VersionedTopic and LegacyTopic are Nova's topics
	// ([notifications] versioned_notifications_topics, default
	// "versioned_notifications"; [oslo_messaging_notifications] topics,
	// default "notifications"); the queue is bound to <topic>.info and
	// <topic>.error of each enabled format.
	VersionedTopic string `yaml:"versioned_topic"`
	LegacyTopic    string `yaml:"legacy_topic"`
	// Prefetch is how many unacknowledged notifications RabbitMQ sends
	// ahead (default 64).
	Prefetch int `yaml:"prefetch"`
}

// LookupConfig configures the Nova API lookup (gophercloud). Credentials
// come from clouds.yaml (Cloud, or OS_CLOUD) or from the OS_* environment,
// as the OpenStack CLI reads them.
type LookupConfig struct {
	// Enabled turns the lookup on (default off).
	Enabled bool `yaml:"enabled"`
	// Cloud is the clouds.yaml entry; empty: OS_CLOUD, else OS_* variables.
	Cloud string `yaml:"cloud"`
	// Region of the compute endpoint (default: clouds.yaml's or OS_REGION_NAME).
	Region string `yaml:"region"`
}

// Defaults.
const (
	DefaultExchange       = "nova"
	DefaultQueue          = "vmglue-openstack"
	DefaultVersionedTopic = "versioned_notifications"
	DefaultLegacyTopic    = "notifications"
	DefaultPrefetch       = 64
)

// SetDefaults fills what the file left out.
func (c *Config) SetDefaults() {
	if c.Name == "" {
		c.Name = openstack.NameDisplayName
	}
	if c.AMQP.Exchange == "" {
		c.AMQP.Exchange = DefaultExchange
	}
	if c.AMQP.Queue == "" {
		c.AMQP.Queue = DefaultQueue
	}
	if c.AMQP.VersionedTopic == "" {
		c.AMQP.VersionedTopic = DefaultVersionedTopic
	}
	if c.AMQP.LegacyTopic == "" {
		c.AMQP.LegacyTopic = DefaultLegacyTopic
	}
	if c.AMQP.Prefetch == 0 {
		c.AMQP.Prefetch = DefaultPrefetch
	}
	if c.Formats == nil {
		c.Formats = []string{openstack.FormatVersioned, openstack.FormatLegacy}
	}
}

// Validate names the offending key.
func (c *Config) Validate() error {
	const p = "bridge.openstack."
	switch {
	case !eventbus.ValidToken(c.Cloud):
		return fmt.Errorf(p+"cloud: %q: required; letters, digits, '-' and '_'", c.Cloud)
	case c.Name != openstack.NameDisplayName && c.Name != openstack.NameHostname:
		return fmt.Errorf(p+"name: %q, want display_name or hostname", c.Name)
	case len(c.AMQP.URLs) == 0:
		return errors.New(p + "amqp.urls: at least one amqp:// or amqps:// URL is required")
	case c.SpoolDir == "":
		return errors.New(p + "spool_dir: required")
	case c.AMQP.Prefetch < 1 || c.AMQP.Prefetch > 65535:
		return fmt.Errorf(p+"amqp.prefetch: %d, want 1 to 65535", c.AMQP.Prefetch)
	case len(c.Formats) == 0:
		return errors.New(p + "formats: enable versioned, legacy or both")
	case (c.AMQP.CertFile == "") != (c.AMQP.KeyFile == ""):
		return errors.New(p + "amqp.cert_file and amqp.key_file: set both or neither")
	}
	for _, f := range c.Formats {
		if f != openstack.FormatVersioned && f != openstack.FormatLegacy {
			return fmt.Errorf(p+"formats: %q, want versioned or legacy", f)
		}
	}
	for i, raw := range c.AMQP.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
			return fmt.Errorf(p+"amqp.urls[%d]: %s: want amqp://host:port/vhost or amqps://", i, eventbus.RedactURL(raw))
		}
	}
	for _, s := range []struct{ key, v string }{{"exchange", c.AMQP.Exchange}, {"queue", c.AMQP.Queue},
		{"versioned_topic", c.AMQP.VersionedTopic}, {"legacy_topic", c.AMQP.LegacyTopic}} {
		if strings.ContainsAny(s.v, " #*") || len(s.v) > 200 {
			return fmt.Errorf(p+"amqp.%s: %q: no spaces or wildcards, at most 200 bytes", s.key, s.v)
		}
	}
	return nil
}

// RoutingKeys are the binding keys of the queue: <topic>.info and
// <topic>.error of every enabled format.
func (c *Config) RoutingKeys() []string {
	var keys []string
	if slices.Contains(c.Formats, openstack.FormatVersioned) {
		keys = append(keys, c.AMQP.VersionedTopic+".info", c.AMQP.VersionedTopic+".error")
	}
	if slices.Contains(c.Formats, openstack.FormatLegacy) {
		keys = append(keys, c.AMQP.LegacyTopic+".info", c.AMQP.LegacyTopic+".error")
	}
	return keys
}
