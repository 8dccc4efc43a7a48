package hookcmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/vmglue/vmglue/internal/cli"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
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
	root := os.Getenv("VMGLUE_CORPUS")
	if root == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("VMGLUE_CORPUS is not set in CI: point it at the shared corpus folder")
		}
		t.Skip("SKIPPED: VMGLUE_CORPUS is not set; set it to the shared corpus (e.g. /work/shared/corpus) to run the hook on real VM documents")
	}
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

// A secret user attribute (the autosign challenge) leaves the hook sealed:
// the stored event, and so every bucket and dead letter after it, never
// holds it in clear text; nor does the hook's output.
func TestHookSealsSecrets(t *testing.T) {
	srv := natstest.Start(t)
	const secret = "hunter2-challenge"
	doc := testenv.OneVMXML(testenv.OneVM{ID: 61, Name: "web61", State: 3, LCM: 3, IP: "10.0.0.61", Time: 1763790000,
		UserAttr: map[string]string{"PUPPET_CHALLENGE": secret, "ROLE": "web"}})
	res := hookRun{stdin: []byte(b64(string(doc)) + " running"), env: env(srv.URL, t.TempDir())}.run(t)
	if res.code != 0 || strings.Contains(res.stderr, secret) {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	evs := stored(t, srv.URL)
	if len(evs) != 1 {
		t.Fatalf("%d events stored, want 1", len(evs))
	}
	vm := evs[0].Data
	raw, _ := json.Marshal(evs[0])
	if bytes.Contains(raw, []byte(secret)) {
		t.Fatalf("stored event holds the secret: %s", raw)
	}
	if got := vm.Attributes["PUPPET_CHALLENGE"]; got != eventbus.Seal("one", "61", secret) || !eventbus.MatchSecret(&vm, got, secret) {
		t.Fatalf("PUPPET_CHALLENGE stored as %q, want the seal of the secret", got)
	}
	if vm.Attributes["ROLE"] != "web" {
		t.Fatalf("ROLE %q, want it in clear text", vm.Attributes["ROLE"])
	}
}
