// Package natsconf holds no code: this directory is the example
// nats-server configuration of vmglue's NATS roles (nats-server.conf,
// permissions.conf) for an external NATS, and the test that starts a real
// nats-server with it and checks what each role can do.
package natsconf
