package natstest

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
)

// RoleURL returns url with the credential of role (user the role, its
// password) as userinfo, for tests that connect as one role.
func RoleURL(rawURL, role, password string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	u.User = url.UserPassword(role, password)
	return u.String()
}

// roleClient is a connection in one role that records the permission
// violations the server reports.
type roleClient struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	violations chan error
}

// ConnectRole connects as role with password (and the role's inbox prefix),
// with opts (nats.RootCAs for a TLS server), and fails the test when the
// server refuses.
func ConnectRole(t testing.TB, rawURL, role, password string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	c := connectRole(t, rawURL, role, password, opts...)
	return c.nc, c.js
}

func connectRole(t testing.TB, rawURL, role, password string, opts ...nats.Option) *roleClient {
	t.Helper()
	c := &roleClient{violations: make(chan error, 64)}
	nc, err := nats.Connect(rawURL, append([]nats.Option{nats.UserInfo(role, password), nats.CustomInboxPrefix(inbox(role)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				select {
				case c.violations <- err:
				default:
				}
			}
		})}, opts...)...)
	if err != nil {
		t.Fatalf("connect as %s: %v", role, err)
	}
	t.Cleanup(nc.Close)
	c.nc = nc
	if c.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	return c
}

func inbox(role string) string {
	if p := eventbus.InboxPrefix(role); p != "" {
		return p
	}
	return nats.InboxPrefix[:len(nats.InboxPrefix)-1]
}

// try runs do and returns the first permission violation the server
// reports while it runs (a refused request gets no reply: do would only
// time out), or what do returned.
func (c *roleClient) try(do func(ctx context.Context, c *roleClient) error) (denied, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- do(ctx, c) }()
	select {
	case err = <-done:
	case denied = <-c.violations:
		cancel()
		<-done
		return denied, nil
	}
	select { // a violation reported just before the reply
	case denied = <-c.violations:
	default:
	}
	return denied, err
}

// CheckRoles checks, on a provisioned server at rawURL, that a client
// without credentials is refused and that each role (password(role)) can
// do what it needs and nothing of what the others may do. opts go to every
// connection (nats.RootCAs for a TLS server).
func CheckRoles(t *testing.T, rawURL string, password func(role string) string, opts ...nats.Option) {
	t.Helper()
	once := append(slices.Clip(opts), nats.NoReconnect())
	if nc, err := nats.Connect(rawURL, once...); err == nil {
		nc.Close()
		t.Fatal("a client without credentials was accepted")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("a client without credentials: %v, want an authorization violation", err)
	}
	if nc, err := nats.Connect(rawURL, append(once, nats.UserInfo(eventbus.RoleHook, "wrong-password-123456"))...); err == nil {
		nc.Close()
		t.Fatal("a wrong password was accepted")
	}
	serve := connectRole(t, rawURL, eventbus.RoleServe, password(eventbus.RoleServe), opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eventbus.Provision(ctx, serve.js, eventbus.ProvisionOptions{}); err != nil {
		t.Fatalf("serve provisions: %v", err)
	}
	applied, err := serve.js.KeyValue(ctx, eventbus.BucketApplied)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := applied.Put(ctx, "dns.one.7", []byte(`{"serve":"wrote this"}`)); err != nil {
		t.Fatalf("serve writes %s: %v", eventbus.BucketApplied, err)
	}
	for _, role := range []string{eventbus.RoleHook, eventbus.RoleOps, eventbus.RoleAutosign} {
		c := connectRole(t, rawURL, role, password(role), opts...)
		// A worker's consumer, for "delete a consumer".
		if _, err := serve.js.CreateOrUpdateConsumer(ctx, eventbus.StreamEvents, jetstream.ConsumerConfig{Durable: "vmglue-dns", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatalf("serve creates a consumer: %v", err)
		}
		for _, tt := range roleCases {
			allowed := tt.allowed[role]
			t.Run(role+"/"+tt.name, func(t *testing.T) {
				for len(c.violations) > 0 {
					<-c.violations
				}
				denied, err := c.try(tt.do)
				switch {
				case allowed && (denied != nil || err != nil):
					t.Fatalf("%s may %s, got %v %v", role, tt.name, denied, err)
				case !allowed && denied == nil && err == nil:
					t.Fatalf("%s must not %s, and did", role, tt.name)
				}
			})
		}
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Whatever the others tried, the workers' record is intact and the
	// streams exist.
	e, err := applied.Get(ctx, "dns.one.7")
	if err != nil || string(e.Value()) != `{"serve":"wrote this"}` {
		t.Fatalf("%s dns.one.7 after the other roles: %v %v", eventbus.BucketApplied, e, err)
	}
	vms, err := serve.js.KeyValue(ctx, eventbus.BucketVMs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vms.Get(ctx, "dns.one.7"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("%s dns.one.7 after the other roles: %v, want not found", eventbus.BucketVMs, err)
	}
	for _, s := range []string{eventbus.StreamEvents, eventbus.StreamDLQ} {
		if _, err := serve.js.Stream(ctx, s); err != nil {
			t.Fatalf("stream %s after the other roles: %v", s, err)
		}
	}
	st, err := serve.js.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n == 0 {
		t.Fatalf("stream %s is empty after the other roles: purged", eventbus.StreamEvents)
	}
	if _, err := serve.js.Stream(ctx, "EVIL"); err == nil {
		t.Fatal("another role created a stream")
	}
}
