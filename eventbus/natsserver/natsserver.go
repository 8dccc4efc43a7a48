// Package natsserver embeds a JetStream-enabled nats-server (what `vmglue
// serve` runs when no external NATS is configured). It lives apart from
// eventbus so that the hook binary does not link the server.
package natsserver

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/vmglue/vmglue/eventbus"
)

// Options configure the nats-server that vmglue serve embeds.
type Options struct {
	// Listen is host:port of the client listener; port 0 picks a free one.
	Listen string
	// StoreDir is where JetStream keeps its files.
	StoreDir string
	// Log turns on the server's own logging (to stderr).
	Log bool
	// Roles, when set, are the only clients accepted: user name the role,
	// its password, and the role's Permissions (vmglue serve's default).
	Roles Credentials
	// User and Password, or Token, when set (and Roles is not), are
	// required from every client, with every permission. Without Roles or
	// them the server only listens on a loopback address.
	User, Password, Token string
}

// ErrOpenListen refuses an embedded server that would let anyone on the
// network publish events (a forged vm.deleted removes DNS records, HAProxy
// servers and Puppet certificates).
var ErrOpenListen = errors.New("not a loopback address and no client authentication configured")

// DefaultListen is the embedded server's default client address.
const DefaultListen = eventbus.DefaultListen

// ErrAddrInUse is returned when the embedded server's port is taken.
var ErrAddrInUse = errors.New("address already in use")

// Start starts a JetStream-enabled nats-server in this process and
// waits until it accepts clients.
func Start(o Options) (*server.Server, error) {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	host, portS, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portS)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("nats listen address %q: bad port", o.Listen)
	}
	if len(o.Roles) > 0 && (o.User != "" || o.Token != "") {
		return nil, errors.New("nats auth: per-role credentials and a shared user or token are exclusive")
	}
	auth := len(o.Roles) > 0 || o.Token != "" || (o.User != "" && o.Password != "")
	if ip := net.ParseIP(host); !auth && (ip == nil || !ip.IsLoopback()) && host != "localhost" {
		return nil, fmt.Errorf("nats listen %s: %w (use nats.embedded.auth: roles, or set nats.user and nats.password_file, or nats.token_file, or listen on 127.0.0.1)", o.Listen, ErrOpenListen)
	}
	if port != 0 {
		// nats-server would log and exit the process; check first.
		l, err := net.Listen("tcp", o.Listen)
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("nats listen %s: %w (is another vmglue serve or nats-server running? use --nats-listen)", o.Listen, ErrAddrInUse)
		}
		if err != nil {
			return nil, fmt.Errorf("nats listen %s: %w", o.Listen, err)
		}
		l.Close()
	} else {
		port = -1
	}
	opts := &server.Options{
		ServerName: "vmglue",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoSigs:     true,
		NoLog:      !o.Log,
		Username:   o.User,
		Password:   o.Password,
	}
	if o.Token != "" {
		opts.Username, opts.Password, opts.Authorization = "", "", o.Token
	}
	if len(o.Roles) > 0 {
		opts.Users = o.Roles.users()
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("create embedded nats-server: %w", err)
	}
	if o.Log {
		ns.ConfigureLogger()
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded nats-server on %s not ready after 30s", o.Listen)
	}
	return ns, nil
}
