package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/config"
)

// jetStream loads the config and connects an ops command (named name in the
// server's connection list) to NATS. The caller closes the connection.
func (g *globals) jetStream(name string) (*nats.Conn, jetstream.JetStream, error) {
	cfg, err := g.load()
	if err != nil {
		return nil, nil, err
	}
	nc, err := g.connect(cfg, eventbus.RoleOps, name, 0)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// connect connects a client in role (eventbus.RoleOps, RoleAutosign)
// named name, with the role's credential (config.RoleConnOptions), within
// timeout (0: eventbus.Connect's default). When
// the server refuses a client that found none, the error says where it
// looked.
func (g *globals) connect(cfg *config.Config, role, name string, timeout time.Duration) (*nats.Conn, error) {
	co, found, err := cfg.RoleConnOptions(role, name, g.clientURL(cfg))
	if err != nil {
		return nil, err
	}
	co.Timeout = timeout
	nc, err := eventbus.Connect(co, false)
	if err != nil && !found && errors.Is(err, nats.ErrAuthorization) {
		return nil, fmt.Errorf("%w (no %s credential found: run as root or the vmglue user, which read %s, or set nats.%s in the config)",
			err, role, eventbus.CredentialPath(cfg.NATS.Embedded.DataDir, role), role)
	}
	return nc, err
}

// withJetStream connects the ops command name to NATS (as jetStream does),
// runs fn and closes the connection.
func (g *globals) withJetStream(name string, fn func(js jetstream.JetStream) error) error {
	nc, js, err := g.jetStream(name)
	if err != nil {
		return err
	}
	defer nc.Close()
	return fn(js)
}
