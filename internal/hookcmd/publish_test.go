package hookcmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/cli"
	"github.com/vmglue/vmglue/internal/testenv"
)

var publishedRE = regexp.MustCompile(`^vmglue-hook: published (\S+) seq (\d+)\n$`)

func TestHookPublishes(t *testing.T) {
	srv := natstest.Start(t)
	tests := []struct {
		name    string
		run     hookRun
		subject string
	}{
		{"stdin as HEM writes it", hookRun{stdin: runningInput(1)}, "vmglue.vm.one.1.running"},
		{"stdin with a newline", hookRun{stdin: append(runningInput(2), '\n')}, "vmglue.vm.one.2.running"},
		{"argv without ARGUMENTS_STDIN", hookRun{args: strings.Fields(string(runningInput(3)))}, "vmglue.vm.one.3.running"},
		{"pending VM", hookRun{stdin: []byte(b64(vmXML(4, 1, 0, 1700000000)) + " create")}, "vmglue.vm.one.4.created"},
		{"other cloud by flag", hookRun{args: append([]string{"-cloud", "east"}, strings.Fields(string(runningInput(5)))...)}, "vmglue.vm.east.5.running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spoolDir := filepath.Join(t.TempDir(), "spool")
			tt.run.env = env(srv.URL, spoolDir)
			res := tt.run.run(t)
			if res.code != 0 {
				t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
			}
			m := publishedRE.FindStringSubmatch(res.stderr)
			if m == nil {
				t.Fatalf("stderr %q: want one line \"vmglue-hook: published <id> seq <n>\"", res.stderr)
			}
			if res.stdout != "" {
				t.Errorf("stdout %q, want nothing", res.stdout)
			}
			if got := storedAt(t, srv.URL, tt.subject); got != m[1] {
				t.Errorf("stored id %s on %s, hook said %s", got, tt.subject, m[1])
			}
			if _, err := os.Stat(spoolDir); err == nil {
				t.Errorf("a published run created the spool directory")
			}
		})
	}
}

func TestHookDuplicate(t *testing.T) {
	srv := natstest.Start(t)
	spoolDir := t.TempDir()
	tests := []struct {
		name string
		run  hookRun
		want string // stderr prefix
	}{
		{"first", hookRun{stdin: runningInput(7)}, "vmglue-hook: published "},
		{"same input again (onehook retry)", hookRun{stdin: runningInput(7)}, "vmglue-hook: duplicate "},
		{"same VM in argv form", hookRun{args: strings.Fields(string(runningInput(7)))}, "vmglue-hook: duplicate "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run.env = env(srv.URL, spoolDir)
			res := tt.run.run(t)
			if res.code != 0 {
				t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
			}
			oneLine(t, res.stderr, tt.want)
		})
	}
	if evs := stored(t, srv.URL); len(evs) != 1 {
		t.Fatalf("%d events stored, want 1", len(evs))
	}
}

// TestHookCorpus fires every OpenNebula VM document of the shared corpus
// through the built hook and checks that each one is stored.
func TestHookCorpus(t *testing.T) {
	root := testenv.Corpus(t, "hook")
	files, err := filepath.Glob(filepath.Join(root, "opennebula", "vm-*.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("VMGLUE_CORPUS=%s: no opennebula/vm-*.xml there", root)
	}
	srv := natstest.Start(t)
	ran := 0
	var ids []string
	for _, f := range files {
		doc, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(doc, []byte("<VM_POOL")) {
			continue // a pool listing, not hook input
		}
		ran++
		t.Run(filepath.Base(f), func(t *testing.T) {
			in := []byte(b64(string(doc)) + " running")
			res := hookRun{stdin: in, env: env(srv.URL, t.TempDir())}.run(t)
			m := publishedRE.FindStringSubmatch(res.stderr)
			if res.code != 0 || m == nil {
				t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
			}
			found := false
			for _, ev := range stored(t, srv.URL) {
				found = found || ev.ID == m[1]
			}
			if !found {
				t.Errorf("event %s not stored", m[1])
			}
			ids = append(ids, m[1])
		})
	}
	if ran == 0 {
		t.Fatalf("VMGLUE_CORPUS=%s: only VM_POOL documents, no VM", root)
	}
	// What an operator sees: every one of them in vmglue tail --json.
	var out, errb bytes.Buffer
	if code := cli.Execute(context.Background(), []string{"tail", "--all", "--no-follow", "--json", "-s", srv.URL}, &out, &errb); code != 0 {
		t.Fatalf("vmglue tail: exit %d, %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for _, id := range ids {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, `"id":"`+id+`"`) }) {
			t.Errorf("event %s not in vmglue tail --json", id)
		}
	}
	if len(lines) != len(ids) {
		t.Errorf("vmglue tail --json printed %d lines for %d events", len(lines), len(ids))
	}
}

// No secret user attribute reaches the bus, through a real NATS: the
// stored event (and so every bucket, dead letter and tail after it) holds
// neither ROOT_PASS, DB_PASS nor a configured *_PIN in clear text, only
// "(redacted)"; the autosign challenge travels as a MAC keyed with the
// challenge key, or, without a readable key, not at all, which the hook's
// line says (exit 0: the event is published all the same).
func TestHookKeepsSecretsOffTheBus(t *testing.T) {
	const challenge = "hunter2-challenge"
	secrets := map[string]string{"ROOT_PASS": "r00t-pass-value", "DB_PASS": "db-pass-value", "SIM_PIN": "pin-value-4711"}
	dir := t.TempDir()
	key := []byte(strings.Repeat("k3y", 12))
	keyFile := filepath.Join(dir, "challenge.key")
	if err := os.WriteFile(keyFile, append(key, '\n'), 0o640); err != nil {
		t.Fatal(err)
	}
	openKey := filepath.Join(dir, "open.key")
	if err := os.WriteFile(openKey, key, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(openKey, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, keyFile string
		mac           bool   // the challenge is stored as its MAC; else absent
		note          string // in the hook's line
	}{
		{"key", keyFile, true, ""},
		{"no key file", filepath.Join(dir, "missing.key"), false, "PUPPET_CHALLENGE not sent: no challenge key: open " + dir + "/missing.key: no such file"},
		{"key readable by everyone", openKey, false, "PUPPET_CHALLENGE not sent: no challenge key: " + openKey + " is readable by every user"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := natstest.Start(t)
			attrs := map[string]string{"PUPPET_CHALLENGE": challenge, "ROLE": "web", "SSH_PUBLIC_KEY": "ssh-ed25519 AAAA"}
			maps.Copy(attrs, secrets)
			doc := testenv.OneVMXML(testenv.OneVM{ID: 61 + i, Name: "web61", State: 3, LCM: 3, IP: "10.0.0.61", Time: 1763790000, UserAttr: attrs})
			res := hookRun{stdin: []byte(b64(string(doc)) + " running"), env: env(srv.URL, t.TempDir(),
				"VMGLUE_CHALLENGE_KEY_FILE", tc.keyFile, "VMGLUE_SECRET_ATTRIBUTES", "*_PIN")}.run(t)
			if res.code != 0 || !strings.Contains(res.stderr, "published") || !strings.Contains(res.stderr, tc.note) {
				t.Fatalf("exit %d, stderr %q; want published, with %q", res.code, res.stderr, tc.note)
			}
			evs := stored(t, srv.URL)
			if len(evs) != 1 {
				t.Fatalf("%d events stored, want 1", len(evs))
			}
			vm := evs[0].Data
			raw, _ := json.Marshal(evs[0])
			for _, v := range append(slices.Collect(maps.Values(secrets)), challenge, string(key)) {
				if bytes.Contains(raw, []byte(v)) || strings.Contains(res.stderr, v) {
					t.Fatalf("secret %q in the stored event or the hook's line: %s / %s", v, raw, res.stderr)
				}
			}
			for k := range secrets {
				if vm.Attributes[k] != eventbus.RedactedValue {
					t.Errorf("%s stored as %q, want %q", k, vm.Attributes[k], eventbus.RedactedValue)
				}
			}
			got, ok := vm.Attributes["PUPPET_CHALLENGE"]
			if tc.mac != ok || (ok && !eventbus.MatchChallenge(key, &vm, got, challenge)) {
				t.Fatalf("PUPPET_CHALLENGE stored as %q (present %v), want its MAC: %v", got, ok, tc.mac)
			}
			if vm.Attributes["ROLE"] != "web" || vm.Attributes["SSH_PUBLIC_KEY"] != "ssh-ed25519 AAAA" {
				t.Fatalf("attributes %v: ROLE and SSH_PUBLIC_KEY must stay in clear text", vm.Attributes)
			}
		})
	}
}
