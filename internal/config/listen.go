package config

import (
	"path/filepath"

	"github.com/vmglue/vmglue/hooks/opennebula/listen"
)

// Listeners configures the sources that run as `vmglue listen <name>`.
type Listeners struct {
	// OpenNebula is listen.opennebula; when absent, `vmglue listen
	// opennebula` runs with the defaults (oned on 127.0.0.1:2101, cloud
	// "one").
	OpenNebula *listen.Config `yaml:"opennebula,omitempty"`
}

func (l *Listeners) setDefaults() {
	if l.OpenNebula != nil {
		setListenDefaults(l.OpenNebula)
	}
}

func (l *Listeners) validate() error {
	if l.OpenNebula != nil {
		return l.OpenNebula.Validate()
	}
	return nil
}

// OpenNebulaListener returns listen.opennebula with its defaults, or the
// defaults alone when the section is absent.
func (c *Config) OpenNebulaListener() listen.Config {
	if c.Listen.OpenNebula != nil {
		return *c.Listen.OpenNebula
	}
	var l listen.Config
	setListenDefaults(&l)
	return l
}

// setListenDefaults fills l's defaults; the spool goes under the data
// directory: <data dir>/spool/listen-opennebula-<cloud>.
func setListenDefaults(l *listen.Config) {
	l.SetDefaults()
	if l.SpoolDir == "" {
		l.SpoolDir = filepath.Join(DefaultDataDir(), "spool", "listen-opennebula-"+l.Cloud)
	}
}
