package hookcmd_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/testenv"
)

// TestHookTLS runs the hook against a real nats-server that demands TLS
// (its certificate from a CA made by the test). With VMGLUE_NATS_CA it
// publishes, over a tls:// URL or a nats:// one (the server asks for TLS,
// the client upgrades). Without it, or with another CA, the certificate is
// refused: one line says why, the event is spooled, and the next run with
// the CA sends it. With a CA and a server without TLS, it does not fall
// back to plain text. The password never appears in what the hook prints.
func TestHookTLS(t *testing.T) {
	srv := natstest.StartTLS(t)
	plain := natstest.Start(t)
	otherCA := testenv.NewTestCA(t).CAFile
	natsURL := "nats://" + strings.TrimPrefix(srv.URL, "tls://")
	const password = "hook-password-3f9a1c77e2"
	const untrusted = "nats TLS: certificate signed by unknown authority: VMGLUE_NATS_CA must name the CA that signed the server's certificate"
	tests := []struct {
		name, url, ca string
		reason        string // "": published; else spooled for this reason
	}{
		{"tls URL with the CA", srv.URL, srv.CAFile, ""},
		{"nats URL with the CA", natsURL, srv.CAFile, ""},
		{"no CA", srv.URL, "", untrusted},
		{"nats URL without CA", natsURL, "", untrusted},
		{"another CA", srv.URL, otherCA, untrusted},
		{"CA and a server without TLS", plain.URL, srv.CAFile, "nats TLS: the server offers none, and VMGLUE_NATS_CA asks for it"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := env(tt.url, filepath.Join(t.TempDir(), "spool"), "VMGLUE_NATS_USER", "hook", "VMGLUE_NATS_PASSWORD", password)
			if tt.ca != "" {
				e["VMGLUE_NATS_CA"] = tt.ca
			}
			res := hookRun{stdin: runningInput(300 + i), env: e}.run(t)
			if strings.Contains(res.stdout+res.stderr, password) {
				t.Errorf("the password is in the hook's output: %q %q", res.stdout, res.stderr)
			}
			var id string
			if tt.reason == "" {
				m := publishedRE.FindStringSubmatch(res.stderr)
				if res.code != 0 || m == nil {
					t.Fatalf("exit %d, stderr %q: want published", res.code, res.stderr)
				}
				id = m[1]
			} else {
				id = mustSpool(t, res, tt.reason)
				// Nothing lost: once the CA is set, the next run sends it.
				e["VMGLUE_NATS_URL"], e["VMGLUE_NATS_CA"] = srv.URL, srv.CAFile
				res = hookRun{args: []string{"-flush"}, env: e}.run(t)
				if res.code != 0 || !strings.HasPrefix(res.stderr, "vmglue-hook: flush: sent 1") {
					t.Fatalf("flush with the CA: exit %d, stderr %q", res.code, res.stderr)
				}
			}
			if ids := storedTLS(t, srv); !slices.Contains(ids, id) {
				t.Errorf("event %s not stored (stored: %v)", id, ids)
			}
		})
	}
}

// storedTLS returns the ids of the events stored on a TLS server.
func storedTLS(t *testing.T, srv *natstest.TLSServer) []string {
	t.Helper()
	_, js := natstest.Connect(t, srv.URL, nats.RootCAs(srv.CAFile))
	var ids []string
	for _, ev := range natstest.Events(t, js) {
		ids = append(ids, ev.ID)
	}
	return ids
}
