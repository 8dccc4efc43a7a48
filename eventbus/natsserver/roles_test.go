package natsserver_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natsserver"
	"github.com/vmglue/vmglue/eventbus/natstest"
)

// The embedded server with per-role credentials refuses clients without
// one, and each role can do exactly what it needs.
func TestEmbeddedRoles(t *testing.T) {
	dir := t.TempDir()
	creds, err := natsserver.EnsureCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := natsserver.Start(natsserver.Options{Listen: "127.0.0.1:0", StoreDir: dir, Roles: creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	natstest.CheckRoles(t, ns.ClientURL(), func(role string) string { return creds[role] })
}

// Credentials are made once, private to serve's user, and kept.
func TestEnsureCredentials(t *testing.T) {
	dir := t.TempDir()
	first, err := natsserver.EnsureCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := natsserver.EnsureCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, role := range eventbus.Roles {
		pw := first[role]
		if len(pw) < 40 || again[role] != pw || seen[pw] {
			t.Fatalf("role %s: password %d chars, kept %v, unique %v", role, len(pw), again[role] == pw, !seen[pw])
		}
		seen[pw] = true
		fi, err := os.Stat(eventbus.CredentialPath(dir, role))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("role %s: file %v %v, want mode 0600", role, fi, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, eventbus.CredentialsDir)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("credentials dir: %v %v, want mode 0700", fi, err)
	}
	// A deleted file is made again, with a new password.
	if err := os.Remove(eventbus.CredentialPath(dir, eventbus.RoleHook)); err != nil {
		t.Fatal(err)
	}
	third, err := natsserver.EnsureCredentials(dir)
	if err != nil || third[eventbus.RoleHook] == first[eventbus.RoleHook] || third[eventbus.RoleOps] != first[eventbus.RoleOps] {
		t.Fatalf("after deleting hook.password: new hook password %v, ops kept %v (%v)", third[eventbus.RoleHook] != first[eventbus.RoleHook], third[eventbus.RoleOps] == first[eventbus.RoleOps], err)
	}
}
