package natsconf_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natsserver"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/cli"
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
	return startNode(t, o).ClientURL(), pw, o
}

// startNode starts a nats-server with o on a random loopback client port
// and a temporary store, quiet, until the test ends.
func startNode(t *testing.T, o *server.Options) *server.Server {
	t.Helper()
	o.Host, o.Port, o.StoreDir, o.NoSigs, o.NoLog = "127.0.0.1", -1, t.TempDir(), true, true
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats-server %s not ready", o.ServerName)
	}
	return ns
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
	path := writeConfig(t, "nats:\n  url: "+url+"\n  user: serve\n  password_env: VMGLUE_NATS_SERVE_PASSWORD\n"+
		"  ops: {user: ops, password_env: VMGLUE_NATS_OPS_PASSWORD}\nmetrics:\n  listen: \"\"\n")
	startServe(t, path)
	var out, errb bytes.Buffer
	if code := cli.Execute(context.Background(), []string{"status", "-c", path}, &out, &errb); code != 0 || !strings.Contains(out.String(), eventbus.StreamEvents) {
		t.Fatalf("status as role ops: exit %d, %s%s", code, out.String(), errb.String())
	}
}
