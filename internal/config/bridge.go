package config

import (
	"path/filepath"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/bridge"
)

// Bridges configures the sources that run as `vmglue bridge <name>`; a
// missing section means that bridge cannot run.
type Bridges struct {
	OpenStack *bridge.Config `yaml:"openstack"`
}

func (b *Bridges) setDefaults() {
	if b.OpenStack != nil {
		b.OpenStack.SetDefaults()
		if b.OpenStack.SpoolDir == "" {
			b.OpenStack.SpoolDir = filepath.Join(DefaultDataDir(), "spool", "openstack")
		}
	}
}

func (b *Bridges) validate() error {
	if b.OpenStack != nil {
		return b.OpenStack.Validate()
	}
	return nil
}

// redacted is b with the userinfo of every URL masked.
func (b Bridges) redacted() Bridges {
	if b.OpenStack != nil {
		os := *b.OpenStack
		os.AMQP.URLs = make([]string, len(b.OpenStack.AMQP.URLs))
		for i, u := range b.OpenStack.AMQP.URLs {
			os.AMQP.URLs[i] = eventbus.RedactURL(u)
		}
		b.OpenStack = &os
	}
	return b
}
