package config

import (
	"strings"

	"github.com/vmglue/vmglue/internal/dns"
	"github.com/vmglue/vmglue/internal/lb"
	"github.com/vmglue/vmglue/internal/puppet"
)

// Workers holds one section per worker; a missing section means the worker
// is off.
type Workers struct {
	DNS    *dns.Config    `yaml:"dns"`
	LB     *lb.Config     `yaml:"lb"`
	Puppet *puppet.Config `yaml:"puppet"`
}

// Names lists the configured workers.
func (w *Workers) Names() []string {
	var n []string
	if w.DNS != nil {
		n = append(n, "dns")
	}
	if w.LB != nil {
		n = append(n, "lb")
	}
	if w.Puppet != nil {
		n = append(n, "puppet")
	}
	return n
}

func (w *Workers) setDefaults() {
	if w.DNS != nil {
		w.DNS.SetDefaults()
	}
	if w.LB != nil {
		w.LB.SetDefaults()
	}
	if w.Puppet != nil {
		w.Puppet.SetDefaults()
	}
}

func (w *Workers) validate() error {
	if w.DNS != nil {
		if err := w.DNS.Validate(); err != nil {
			return prefix("workers.", err)
		}
	}
	if w.LB != nil {
		if err := w.LB.Validate(); err != nil {
			return prefix("workers.", err)
		}
	}
	if w.Puppet != nil {
		if err := w.Puppet.Validate(); err != nil {
			return prefix("workers.", err)
		}
	}
	return nil
}

type prefixed struct {
	p   string
	err error
}

// Error is one line: a worker's joined errors are separated by "; ".
func (e *prefixed) Error() string {
	return e.p + strings.ReplaceAll(e.err.Error(), "\n", "; "+e.p)
}
func (e *prefixed) Unwrap() error { return e.err }

func prefix(p string, err error) error { return &prefixed{p: p, err: err} }
