package config

import (
	"errors"
	"fmt"

	"github.com/vmglue/vmglue/eventbus"
)

// Web is the operator's page of `vmglue serve` (internal/web). It is served
// under /ui/ on the metrics listener, or on its own Listen address. It is
// read-only unless Actions is set; actions then need one of Operators'
// tokens.
type Web struct {
	// Disabled turns the page off.
	Disabled bool `yaml:"disabled"`
	// Listen is the page's own address; "" serves it on metrics.listen.
	Listen string `yaml:"listen"`
	// Actions turns on replay, dead-letter retry and drop.
	Actions bool `yaml:"actions"`
	// Operators are the credentials actions accept; each action is logged
	// with the name of the one used.
	Operators []Operator `yaml:"operators"`
}

// Operator is one credential of the page: a name and a token read from a
// file (never from the config itself).
type Operator struct {
	Name      string `yaml:"name"`
	TokenFile string `yaml:"token_file"`
}

// Tokens reads the operators' tokens: name by token.
func (w Web) Tokens() (map[string]string, error) {
	out := map[string]string{}
	for i, o := range w.Operators {
		tok, err := eventbus.ReadSecret(o.TokenFile, "")
		if err != nil {
			return nil, fmt.Errorf("web.operators[%d].token_file: %w", i, err)
		}
		if len(tok) < 16 {
			return nil, fmt.Errorf("web.operators[%d].token_file: token shorter than 16 characters", i)
		}
		out[tok] = o.Name
	}
	return out, nil
}

func (w Web) validate() error {
	if w.Actions && len(w.Operators) == 0 {
		return errors.New("web.actions: needs at least one entry in web.operators")
	}
	for i, o := range w.Operators {
		if o.Name == "" || o.TokenFile == "" {
			return fmt.Errorf("web.operators[%d]: name and token_file are required", i)
		}
	}
	return nil
}
