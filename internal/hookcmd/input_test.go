package hookcmd_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
)

// TestHookInvalidInput: bad input exits 2 with one clear line, and nothing is
// published or spooled.
func TestHookInvalidInput(t *testing.T) {
	srv := natstest.Start(t)
	xml := vmXML(30, 3, 3, 1700000000)
	tests := []struct {
		name string
		run  hookRun
		want string // in the stderr line
	}{
		{"invalid base64", hookRun{stdin: []byte("PFZNPj%%%%%% running")}, "base64"},
		{"base64 with a line break", hookRun{stdin: []byte(b64(xml)[:40] + "\n" + b64(xml)[40:])}, "line break"},
		{"truncated XML", hookRun{stdin: []byte(b64(xml[:len(xml)/2]) + " running")}, "invalid input"},
		{"not a VM", hookRun{stdin: []byte(b64("<HOST><ID>1</ID></HOST>") + " running")}, "invalid input"},
		{"empty stdin", hookRun{stdin: nil}, "empty"},
		{"white space only", hookRun{stdin: []byte(" \t ")}, "empty"},
		{"50 MB stdin", hookRun{stdin: bytes.Repeat([]byte("QUFB"), 50<<20/4)}, "larger than"},
		{"invalid cloud name", hookRun{args: append([]string{"-cloud", "a.b"}, strings.Fields(string(runningInput(30)))...)}, "usage:"},
		{"unknown flag", hookRun{args: []string{"-nope"}}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spoolDir := filepath.Join(t.TempDir(), "spool")
			tt.run.env = env(srv.URL, spoolDir)
			res := tt.run.run(t)
			if res.code != 2 {
				t.Fatalf("exit %d, want 2; stderr %q", res.code, res.stderr)
			}
			oneLine(t, res.stderr, "vmglue-hook: ")
			if !strings.Contains(res.stderr, tt.want) {
				t.Errorf("stderr %q does not mention %q", res.stderr, tt.want)
			}
			if len(res.stderr) > 1100 {
				t.Errorf("stderr is %d bytes, want one short line", len(res.stderr))
			}
			if res.elapsed > 5*time.Second {
				t.Errorf("took %s to refuse", res.elapsed)
			}
			if _, err := os.Stat(spoolDir); err == nil {
				t.Errorf("invalid input created the spool")
			}
		})
	}
	if evs := stored(t, srv.URL); len(evs) != 0 {
		t.Errorf("%d events published from invalid input", len(evs))
	}
}

// authServer starts a JetStream server that requires user "admin" with
// password "right", with vmglue's streams provisioned.
func authServer(t *testing.T) string {
	t.Helper()
	url := natstest.StartRaw(t, server.Options{JetStream: true, StoreDir: t.TempDir(), Username: "admin", Password: "right"})
	nc, err := nats.Connect(url, nats.UserInfo("admin", "right"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := eventbus.Provision(context.Background(), js, eventbus.ProvisionOptions{}); err != nil {
		t.Fatal(err)
	}
	return url
}

// TestHookSecrets: whatever happens, a password or token never reaches the
// hook's output.
func TestHookSecrets(t *testing.T) {
	const secret = "s3cret"
	down := closedURL(t)
	downHost := strings.TrimPrefix(down, "nats://")
	authURL := authServer(t)
	authHost := strings.TrimPrefix(authURL, "nats://")
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []string
		want string // stderr prefix
	}{
		{"password env and URL userinfo, down", []string{"VMGLUE_NATS_URL", "nats://admin:" + secret + "@" + downHost, "VMGLUE_NATS_USER", "admin", "VMGLUE_NATS_PASSWORD", secret}, "vmglue-hook: spooled"},
		{"token env, down", []string{"VMGLUE_NATS_TOKEN", secret}, "vmglue-hook: spooled"},
		{"token in URL, down", []string{"VMGLUE_NATS_URL", "nats://" + secret + "@" + downHost}, "vmglue-hook: spooled"},
		{"URL list with userinfo, down", []string{"VMGLUE_NATS_URL", "nats://admin:" + secret + "@" + downHost + ",nats://admin:" + secret + "@" + downHost}, "vmglue-hook: spooled"},
		{"wrong password", []string{"VMGLUE_NATS_URL", authURL, "VMGLUE_NATS_USER", "admin", "VMGLUE_NATS_PASSWORD", secret}, "vmglue-hook: spooled"},
		{"wrong password from file", []string{"VMGLUE_NATS_URL", authURL, "VMGLUE_NATS_USER", "admin", "VMGLUE_NATS_PASSWORD_FILE", pwFile}, "vmglue-hook: spooled"},
		{"wrong password in URL", []string{"VMGLUE_NATS_URL", "nats://admin:" + secret + "@" + authHost}, "vmglue-hook: spooled"},
		{"URL list with userinfo, error quoting the URL", []string{"VMGLUE_NATS_URL", "nats://admin:" + secret + "@" + downHost + ",nats://admin:" + secret + "@" + authHost, "VMGLUE_NATS_CA", "/nonexistent/ca.pem"}, "vmglue-hook: spooled"},
		{"right password, secret token unused", []string{"VMGLUE_NATS_URL", "nats://admin:right@" + authHost, "VMGLUE_NATS_TOKEN_FILE", pwFile}, "vmglue-hook: published"},
		{"right password", []string{"VMGLUE_NATS_URL", "nats://admin:right@" + authHost}, "vmglue-hook: published"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := env(down, t.TempDir(), tt.env...)
			res := hookRun{stdin: runningInput(40 + i), env: e}.run(t)
			t.Logf("exit %d: %s", res.code, strings.TrimSpace(res.stderr))
			if strings.Contains(res.stdout+res.stderr, secret) {
				t.Fatalf("the secret leaked: stdout %q stderr %q", res.stdout, res.stderr)
			}
			if strings.Contains(res.stderr, "right") {
				t.Errorf("the right password leaked: %q", res.stderr)
			}
			if tt.want != "" {
				oneLine(t, res.stderr, tt.want)
			}
			if res.code != 0 {
				t.Errorf("exit %d, want 0", res.code)
			}
		})
	}
}
