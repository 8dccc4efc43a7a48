// Package natstest starts a real embedded nats-server with JetStream on a
// random loopback port for tests, with vmglue's streams and buckets
// provisioned.
package natstest

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natsserver"
)

// Server is a running embedded nats-server.
type Server struct {
	*server.Server
	URL      string
	StoreDir string
}

// Start starts a provisioned server that stops when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartIn(t, t.TempDir(), "127.0.0.1:0")
}

// StartIn starts a server with the given store directory and listen address
// (restart a stopped server on the same address to test outages).
func StartIn(t testing.TB, dir, listen string) *Server {
	t.Helper()
	ns, err := natsserver.Start(natsserver.Options{Listen: listen, StoreDir: dir})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	s := &Server{Server: ns, URL: ns.ClientURL(), StoreDir: dir}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, js := Connect(t, s.URL)
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := eventbus.Provision(ctx, js, eventbus.ProvisionOptions{}); err != nil {
		t.Fatalf("provision: %v", err)
	}
	return s
}

// StartRaw starts a nats-server with exactly o (on 127.0.0.1, a random
// port, quiet), nothing provisioned: for the faults the provisioned one
// cannot show (no JetStream, other credentials). It stops when the test
// ends; the result is its client URL.
func StartRaw(t testing.TB, o server.Options) string {
	t.Helper()
	o.Host, o.Port, o.NoSigs, o.NoLog = "127.0.0.1", -1, true, true
	ns, err := server.NewServer(&o)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	return ns.ClientURL()
}

// FreeAddr returns a loopback address where nothing listens (for now): a
// NATS that is down, or where a server is started later.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Stop shuts the server down and waits for it.
func (s *Server) Stop() { s.Shutdown(); s.WaitForShutdown() }

// Connect opens a client connection, with opts (nats.RootCAs for a TLS
// server), closed at the end of the test.
func Connect(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// Events returns every event stored in the event stream, in order.
func Events(t testing.TB, js jetstream.JetStream) []eventbus.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	var out []eventbus.Event
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted
		}
		if err != nil {
			t.Fatalf("get stored message %d: %v", seq, err)
		}
		ev, err := eventbus.Unmarshal(m.Data)
		if err != nil {
			t.Fatalf("stored message %d: %v", seq, err)
		}
		if m.Subject != ev.NATSSubject() {
			t.Fatalf("stored message %d: subject %s, want %s", seq, m.Subject, ev.NATSSubject())
		}
		out = append(out, ev)
	}
	return out
}

// StoredIDs returns the ids of the events stored at url, in order.
func StoredIDs(t testing.TB, url string) []string {
	t.Helper()
	_, js := Connect(t, url)
	var ids []string
	for _, ev := range Events(t, js) {
		ids = append(ids, ev.ID)
	}
	return ids
}
