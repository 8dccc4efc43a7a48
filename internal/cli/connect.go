package cli

import (
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
)

// jetStream loads the config and connects an ops command (named name in the
// server's connection list) to NATS. The caller closes the connection.
func (g *globals) jetStream(name string) (*nats.Conn, jetstream.JetStream, error) {
	cfg, err := g.load()
	if err != nil {
		return nil, nil, err
	}
	co, err := cfg.ConnOptions(name, g.clientURL(cfg))
	if err != nil {
		return nil, nil, err
	}
	nc, err := eventbus.Connect(co, false)
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
