package natsconf_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natsserver"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/cli"
	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/serve"
)

// startConf starts a real nats-server (the module vmglue requires) with
// nats-server.conf as shipped, on a random loopback port and a temporary
// store, the role passwords in its environment.
func startConf(t *testing.T) (string, map[string]string, *server.Options) {
	t.Helper()
	pw := map[string]string{}
	for _, role := range eventbus.Roles {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		pw[role] = hex.EncodeToString(b)
		t.Setenv("VMGLUE_NATS_"+strings.ToUpper(role)+"_PASSWORD", pw[role])
	}
	o, err := server.ProcessConfigFile("nats-server.conf")
	if err != nil {
		t.Fatalf("nats-server.conf: %v", err)
	}
	o.Host, o.Port, o.StoreDir, o.NoSigs, o.NoLog = "127.0.0.1", -1, t.TempDir(), true, true
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return ns.ClientURL(), pw, o
}

// The shipped configuration gives each role exactly the permissions the
// embedded server enforces, and on a real server each role can do what it
// needs and nothing more.
func TestShippedConfigRoles(t *testing.T) {
	url, pw, o := startConf(t)
	if len(o.Users) != len(eventbus.Roles) {
		t.Fatalf("%d users, want one per role %v", len(o.Users), eventbus.Roles)
	}
	for _, u := range o.Users {
		want := natsserver.Permissions(u.Username)
		if want == nil {
			t.Fatalf("user %q is no vmglue role", u.Username)
		}
		if u.Password != pw[u.Username] {
			t.Errorf("user %s: the password is not taken from the environment", u.Username)
		}
		same := func(what string, got, want *server.SubjectPermission) {
			g, w := slices.Sorted(slices.Values(got.Allow)), slices.Sorted(slices.Values(want.Allow))
			if !slices.Equal(g, w) || len(got.Deny) != len(want.Deny) {
				t.Errorf("user %s %s: allow %v deny %v, the embedded server's: allow %v deny %v", u.Username, what, g, got.Deny, w, want.Deny)
			}
		}
		same("publish", u.Permissions.Publish, want.Publish)
		same("subscribe", u.Permissions.Subscribe, want.Subscribe)
	}
	natstest.CheckRoles(t, url, func(role string) string { return pw[role] })
}

// vmglue serve runs on the shipped configuration as role serve, and the
// ops commands as role ops (nats.ops), as the README's external NATS
// set-up says.
func TestShippedConfigServeAndOps(t *testing.T) {
	url, _, _ := startConf(t)
	path := filepath.Join(t.TempDir(), "vmglue.yaml")
	conf := "nats:\n  url: " + url + "\n  user: serve\n  password_env: VMGLUE_NATS_SERVE_PASSWORD\n" +
		"  ops: {user: ops, password_env: VMGLUE_NATS_OPS_PASSWORD}\nmetrics:\n  listen: \"\"\n"
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- serve.Run(ctx, serve.Options{Config: cfg, Ready: func(serve.Info) { close(ready) }}, zerolog.Nop())
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve as role serve: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("serve not ready after 60s")
	}
	var out, errb bytes.Buffer
	if code := cli.Execute(context.Background(), []string{"status", "-c", path}, &out, &errb); code != 0 || !strings.Contains(out.String(), eventbus.StreamEvents) {
		t.Fatalf("status as role ops: exit %d, %s%s", code, out.String(), errb.String())
	}
}
