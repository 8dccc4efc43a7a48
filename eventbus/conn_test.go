package eventbus_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/testenv"
)

// Connect against real servers: a long-lived program (reconnect) may start
// before NATS and connects once it is up, but a TLS failure, which no retry
// mends, is an error at once for it too, as for the one-shot hook.
func TestConnectTLSFailsAtOnce(t *testing.T) {
	tlsSrv := natstest.StartTLS(t)
	plain := natstest.Start(t)
	for _, tt := range []struct {
		name      string
		o         eventbus.ConnOptions
		reconnect bool
		err       string
	}{
		{"no CA, long-lived", eventbus.ConnOptions{URL: tlsSrv.URL}, true, "certificate signed by unknown authority"},
		{"no CA, one-shot", eventbus.ConnOptions{URL: tlsSrv.URL}, false, "certificate signed by unknown authority"},
		{"CA, server without TLS, long-lived", eventbus.ConnOptions{URL: plain.URL, CAFile: tlsSrv.CAFile}, true, nats.ErrSecureConnWanted.Error()},
		{"CA, long-lived", eventbus.ConnOptions{URL: tlsSrv.URL, CAFile: tlsSrv.CAFile}, true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			nc, err := eventbus.Connect(tt.o, tt.reconnect)
			if tt.err == "" {
				if err != nil || !nc.IsConnected() {
					t.Fatalf("connect: %v", err)
				}
				nc.Close()
				return
			}
			if err == nil {
				nc.Close()
				t.Fatalf("connected (or retrying in silence), want an error saying %q", tt.err)
			}
			if !strings.Contains(err.Error(), tt.err) || time.Since(start) > 5*time.Second {
				t.Fatalf("after %s: %v, want at once an error saying %q", time.Since(start), err, tt.err)
			}
		})
	}
}

// A long-lived program started before NATS connects once NATS is up.
func TestConnectBeforeNATSIsUp(t *testing.T) {
	addr := natstest.FreeAddr(t)
	nc, err := eventbus.Connect(eventbus.ConnOptions{URL: "nats://" + addr}, true)
	if err != nil {
		t.Fatalf("connect while NATS is down: %v, want a connection that waits for it", err)
	}
	defer nc.Close()
	if nc.IsConnected() {
		t.Fatal("connected to nothing")
	}
	natstest.StartIn(t, t.TempDir(), addr)
	testenv.WaitFor(t, 10*time.Second, "connected once NATS is up", nc.IsConnected)
	if _, err := nc.Request("$JS.API.INFO", nil, 5*time.Second); err != nil {
		t.Fatalf("request once connected: %v", err)
	}
}
