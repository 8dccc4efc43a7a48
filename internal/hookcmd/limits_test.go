package hookcmd_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/hooks/spool"
	"github.com/vmglue/vmglue/internal/cli"
	"github.com/vmglue/vmglue/internal/testenv"
)

// storedEvent returns the stored event with that id.
func storedEvent(t *testing.T, url, id string) eventbus.Event {
	t.Helper()
	for _, ev := range stored(t, url) {
		if ev.ID == id {
			return ev
		}
	}
	t.Fatalf("event %s not stored", id)
	return eventbus.Event{}
}

// A tenant's 2 MiB USER_TEMPLATE attribute (NATS takes at most 1 MiB) no
// longer makes the event unsendable: it is published with the value cut and
// marked as cut; identity, state and addresses are whole. Also for a DONE.
func TestHookHugeAttributeCut(t *testing.T) {
	srv := natstest.Start(t)
	huge := strings.Repeat("x", 2<<20)
	tests := []struct {
		name     string
		state    int
		lcm      int
		kind     string
		wantAttr map[string]string // besides BLOB
	}{
		{"running", 3, 3, eventbus.KindRunning, map[string]string{"ROLE": "web"}},
		{"done", 6, 0, eventbus.KindDeleted, map[string]string{"ROLE": "web"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := testenv.OneVM{ID: 70 + i, Name: "big", State: tt.state, LCM: tt.lcm, IP: "10.0.0.70", IP6: "2001:db8::70",
				Time: 1763790000, UserAttr: map[string]string{"BLOB": huge, "ROLE": "web"}}
			spoolDir := filepath.Join(t.TempDir(), "spool")
			res := hookRun{stdin: testenv.HookStdin(testenv.OneVMXML(v), "x"), env: env(srv.URL, spoolDir)}.run(t)
			m := publishedRE.FindStringSubmatch(res.stderr)
			if res.code != 0 || m == nil {
				t.Fatalf("exit %d, stderr %q: want published", res.code, res.stderr)
			}
			ev := storedEvent(t, srv.URL, m[1])
			vm := ev.Data
			if vm.Kind != tt.kind || vm.Name != "big" || len(vm.NICs) != 1 || vm.NICs[0].IP != "10.0.0.70" || vm.NICs[0].IP6Global != "2001:db8::70" {
				t.Errorf("identity, state or addresses changed: %+v", vm)
			}
			if got := vm.Attributes["BLOB"]; len(got) != eventbus.MaxAttributeValue || !strings.HasPrefix(huge, got) {
				t.Errorf("BLOB of %d bytes, want its first %d", len(got), eventbus.MaxAttributeValue)
			}
			for k, want := range tt.wantAttr {
				if vm.Attributes[k] != want {
					t.Errorf("attribute %s = %q, want %q", k, vm.Attributes[k], want)
				}
			}
			if !slices.Equal(vm.Cut, []string{eventbus.CutAttributePrefix + "BLOB"}) {
				t.Errorf("cut %q, want [attribute:BLOB]", vm.Cut)
			}
		})
	}
}

// A spooled file that can never be sent (larger than NATS' max_payload,
// spooled by an older hook) is moved to the quarantine directory and the
// events spooled behind it are sent; vmglue spool list shows it with why.
func TestHookQuarantinesUnsendable(t *testing.T) {
	spoolDir := filepath.Join(t.TempDir(), "spool")
	big, err := eventbus.NewEvent(eventbus.VM{Cloud: "one", CloudType: "opennebula", ID: "80", Name: "big", Kind: eventbus.KindRunning})
	if err != nil {
		t.Fatal(err)
	}
	big.Data.Attributes = map[string]string{"BLOB": strings.Repeat("x", 2<<20)}
	if _, err := spool.New(spoolDir).Write(&big); err != nil {
		t.Fatal(err)
	}
	down := closedURL(t)
	var behind []string
	for _, id := range []int{81, 82} {
		behind = append(behind, mustSpool(t, hookRun{stdin: runningInput(id), env: env(down, spoolDir)}.run(t), "nats unreachable"))
	}

	srv := natstest.Start(t)
	res := hookRun{stdin: runningInput(83), env: env(srv.URL, spoolDir)}.run(t)
	if res.code != 0 || !strings.Contains(res.stderr, "(sent 2 spooled)") || !strings.Contains(res.stderr, "quarantine") {
		t.Fatalf("exit %d, stderr %q: want published, sent 2 spooled, one quarantined", res.code, res.stderr)
	}
	for _, id := range behind {
		storedEvent(t, srv.URL, id)
	}
	if es := spooled(t, spoolDir); len(es) != 0 {
		t.Errorf("%d events still spooled", len(es))
	}
	q, err := spool.New(spoolDir).ListQuarantined()
	if err != nil || len(q) != 1 || !strings.Contains(q[0].Name, big.ID) || !strings.Contains(q[0].Reason, "maximum payload") {
		t.Fatalf("quarantine %+v, %v: want the big event, maximum payload exceeded", q, err)
	}

	// The flush timer's run finds nothing left to block on.
	if res := (hookRun{args: []string{"-flush"}, env: env(srv.URL, spoolDir)}).run(t); res.code != 0 {
		t.Errorf("-flush after the quarantine: exit %d, %q", res.code, res.stderr)
	}
	var out, errb bytes.Buffer
	if code := cli.Execute(context.Background(), []string{"spool", "list", "--dir", spoolDir}, &out, &errb); code != 0 {
		t.Fatalf("vmglue spool list: exit %d, %s", code, errb.String())
	}
	if l := strings.TrimSpace(out.String()); !strings.HasPrefix(l, "quarantined  ") || !strings.Contains(l, big.ID) || strings.Count(l, "\n") != 0 {
		t.Errorf("vmglue spool list: %q, want one quarantined line", l)
	}
}

// A real DONE document with a malformed byte in USER_TEMPLATE: the delete
// is published (before, the hook dropped it with exit 2), and the line says
// what was replaced.
func TestHookMalformedByteKeepsDelete(t *testing.T) {
	root := os.Getenv("VMGLUE_CORPUS")
	if root == "" {
		root = filepath.Join("..", "..", "..", "shared", "corpus")
	}
	doc, err := os.ReadFile(filepath.Join(root, "opennebula", "vm-done-vrouter-2nics.xml"))
	if err != nil {
		t.Fatalf("corpus document (set VMGLUE_CORPUS): %v", err)
	}
	bad := bytes.Replace(doc, []byte("<USER_TEMPLATE>"), []byte("<USER_TEMPLATE>\n    <NOTE><![CDATA[caf\xe9 \xff]]></NOTE>"), 1)
	if bytes.Equal(bad, doc) || !bytes.Contains(doc, []byte("<STATE>6</STATE>")) {
		t.Fatal("corpus document changed: want a DONE VM with a USER_TEMPLATE")
	}
	srv := natstest.Start(t)
	res := hookRun{stdin: testenv.HookStdin(bad, "done"), env: env(srv.URL, t.TempDir())}.run(t)
	m := regexp.MustCompile(`^vmglue-hook: published (\S+) seq \d+ \(input: replaced 2 malformed bytes in USER_TEMPLATE/NOTE\)\n$`).FindStringSubmatch(res.stderr)
	if res.code != 0 || m == nil {
		t.Fatalf("exit %d, stderr %q: want published, saying what was replaced", res.code, res.stderr)
	}
	ev := storedEvent(t, srv.URL, m[1])
	if ev.Data.Kind != eventbus.KindDeleted || ev.Data.Attributes["NOTE"] != "caf\uFFFD \uFFFD" {
		t.Errorf("stored %s, NOTE %q", ev.Data.Kind, ev.Data.Attributes["NOTE"])
	}
}

// vmglue-hook -h states the limits and exit codes that the tests above hold.
func TestHookHelpStatesLimits(t *testing.T) {
	if eventbus.MaxAttributeValue != 4<<10 || eventbus.MaxAttributes != 64<<10 || eventbus.MaxText != 1<<10 || eventbus.MaxLabels != 8<<10 {
		t.Fatal("the limits changed: update UsageNotes, the package doc and the README")
	}
	res := hookRun{args: []string{"-h"}}.run(t)
	if res.code != 0 {
		t.Fatalf("-h: exit %d", res.code)
	}
	for _, want := range []string{"4 KiB", "64 KiB", "data.cut", "U+FFFD", "quarantine", "1 refused"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("-h output lacks %q:\n%s", want, res.stderr)
		}
	}
}
