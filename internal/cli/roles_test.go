package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natsserver"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/cli"
	"github.com/vmglue/vmglue/internal/ops/opstest"
	"github.com/vmglue/vmglue/internal/worker"
)

// The ops commands find the ops credential in the data directory of the
// config (as root or the vmglue user), and do their work within the ops
// role's permissions; with another data directory they are refused.
func TestOpsCommandsUseTheOpsRole(t *testing.T) {
	s := startServe(t)
	publish(t, s, opstest.VM("1", eventbus.KindRunning))
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"status"}, eventbus.StreamEvents},
		{[]string{"tail", "--no-follow", "--all"}, "one/1 running"},
		{[]string{"vm", "1"}, "running"},
		{[]string{"dlq", "list"}, ""},
		{[]string{"replay", "--all"}, "1"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if code := cli.Execute(ctx, append(tt.args, "-c", s.config, "-s", s.NATSURL), &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			if !strings.Contains(out.String(), tt.want) {
				t.Fatalf("output lacks %q:\n%s", tt.want, out.String())
			}
		})
	}
	other := filepath.Join(t.TempDir(), "other.yaml")
	if err := os.WriteFile(other, []byte("nats:\n  embedded:\n    data_dir: "+t.TempDir()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := cli.Execute(context.Background(), []string{"status", "-c", other, "-s", s.NATSURL}, &out, &errb); code == 0 ||
		!strings.Contains(errb.String(), "Authorization Violation") {
		t.Fatalf("status without the ops credential: exit %d, stderr %q; want refused", code, errb.String())
	}
}

// A hook-credential client cannot rewrite VMGLUE_APPLIED (what the workers
// applied) nor read it; a forged vm.deleted is accepted by design: the
// hook's credential is the cloud's.
func TestHookCredentialCannotRewriteApplied(t *testing.T) {
	s := startServe(t)
	pw, err := natsserver.ReadCredential(s.DataDir, eventbus.RoleHook)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, hook := natstest.ConnectRole(t, s.NATSURL, eventbus.RoleHook, pw)
	// A refused request gets no answer: each attempt waits a second.
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if _, err := hook.KeyValue(short, eventbus.BucketApplied); err == nil {
		t.Fatalf("the hook opened %s", eventbus.BucketApplied)
	}
	short, cancelShort = context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if _, err := hook.Publish(short, "$KV."+eventbus.BucketApplied+".dns.one.1", []byte("{}")); err == nil {
		t.Fatalf("the hook wrote to %s", eventbus.BucketApplied)
	}
	spw, err := natsserver.ReadCredential(s.DataDir, eventbus.RoleServe)
	if err != nil {
		t.Fatal(err)
	}
	_, js := natstest.ConnectRole(t, s.NATSURL, eventbus.RoleServe, spw)
	kv, err := js.KeyValue(ctx, eventbus.BucketApplied)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := kv.Status(ctx); n.Values() != 0 {
		t.Fatalf("%s holds %d values after the hook's attempts, want 0", eventbus.BucketApplied, n.Values())
	}
	forged := publish(t, s, opstest.VM("1", eventbus.KindDeleted)) // allowed: the cloud's word
	if evs := natstest.Events(t, js); len(evs) != 1 || evs[0].ID != forged.ID {
		t.Fatalf("stored %v, want the forged delete", evs)
	}
}

// nats.embedded.auth: open keeps the unauthenticated loopback of old.
func TestEmbeddedAuthOpen(t *testing.T) {
	s := startServeWith(t, "  # explicit\n")
	if nc, err := nats.Connect(s.NATSURL, nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("roles (the default): a client without credentials was accepted")
	}
	open := startServeWith(t, "    auth: open\n")
	if open.DataDir != "" {
		t.Fatalf("auth open: serve says clients need the credentials in %s", open.DataDir)
	}
	_, js := natstest.Connect(t, open.NATSURL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := worker.OpenSnapshots(ctx, js); err != nil {
		t.Fatalf("auth open: an unauthenticated client: %v", err)
	}
}
