package monitor

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

func TestValidate(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	ok := func() Config {
		return Config{Icinga: &IcingaConfig{URL: "https://127.0.0.1:5665", User: "vmglue", PasswordFile: pw},
			FileSD: &FileSDConfig{Dir: "/var/lib/vmglue/file_sd", Jobs: []Job{{Name: "node", Port: 9100}}}}
	}
	tests := []struct {
		name    string
		change  func(c *Config)
		wantErr string
	}{
		{name: "valid", change: func(*Config) {}},
		{name: "no output", change: func(c *Config) { c.Icinga, c.FileSD = nil, nil }, wantErr: "monitor.icinga: set icinga, file_sd"},
		{name: "http url", change: func(c *Config) { c.Icinga.URL = "http://x:5665" }, wantErr: "monitor.icinga.url"},
		{name: "credentials in url", change: func(c *Config) { c.Icinga.URL = "https://u:p@x:5665" }, wantErr: "monitor.icinga.url"},
		{name: "two passwords", change: func(c *Config) { c.Icinga.PasswordEnv = "PW" }, wantErr: "password_file and password_env"},
		{name: "reserved var", change: func(c *Config) { c.Icinga.Vars = map[string]string{"vmglue_owner": "attribute:X"} }, wantErr: "monitor.icinga.vars"},
		{name: "bad source", change: func(c *Config) { c.Icinga.Vars = map[string]string{"os": "OS"} }, wantErr: "monitor.icinga.vars.os"},
		{name: "bad field", change: func(c *Config) { c.Icinga.Vars = map[string]string{"os": "field:secret"} }, wantErr: "monitor.icinga.vars.os"},
		{name: "relative dir", change: func(c *Config) { c.FileSD.Dir = "sd" }, wantErr: "monitor.file_sd.dir"},
		{name: "bad job name", change: func(c *Config) { c.FileSD.Jobs[0].Name = "a/b" }, wantErr: "monitor.file_sd.jobs[0].name"},
		{name: "port", change: func(c *Config) { c.FileSD.Jobs[0].Port = 0 }, wantErr: "monitor.file_sd.jobs[0].port"},
		{name: "reserved label", change: func(c *Config) { c.FileSD.Jobs[0].Labels = map[string]string{"__address__": "attribute:X"} }, wantErr: "jobs[0].labels"},
		{name: "invalid label", change: func(c *Config) { c.FileSD.Jobs[0].Labels = map[string]string{"a-b": "attribute:X"} }, wantErr: "jobs[0].labels"},
		{name: "fixed label", change: func(c *Config) { c.FileSD.Jobs[0].Labels = map[string]string{"vm_id": "attribute:X"} }, wantErr: "jobs[0].labels"},
		{name: "deleted kind", change: func(c *Config) { c.FileSD.Jobs[0].PresentKinds = []string{"deleted"} }, wantErr: "present_kinds"},
		{name: "owner with space", change: func(c *Config) { c.OwnerID = "a b" }, wantErr: "monitor.owner_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok()
			tc.change(&c)
			c.SetDefaults()
			err := c.Validate()
			if (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func newTarget(t *testing.T, cfg Config) *Target {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg.Icinga != nil {
		cfg.Icinga.URL, cfg.Icinga.User, cfg.Icinga.PasswordFile = "https://127.0.0.1:1", "vmglue", pw
	}
	tg, err := New(cfg, worker.Deps{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func testVM(kind, name string) *eventbus.VM {
	return &eventbus.VM{Cloud: "one", ID: "42", Name: name, Owner: "alice", Kind: kind, State: "POWEROFF",
		Labels: []string{"web", "other"}, Attributes: map[string]string{"OS": "debian", "ROLE": "db,nosuch"},
		NICs: []eventbus.NIC{{IP: "bogus"}, {IP: "10.0.0.42", IP6: "fe80::1", IP6Global: "2001:db8::42"}}}
}

func TestDesiredHost(t *testing.T) {
	tg := newTarget(t, Config{Icinga: &IcingaConfig{Templates: []string{"generic-host"},
		LabelTemplates: map[string]string{"web": "web-server", "db": "db-server"}, TemplateAttribute: "ROLE",
		Vars: map[string]string{"os": "attribute:OS", "web": "label:web", "owner": "field:owner", "none": "attribute:NONE"}}})
	tests := []struct {
		name, kind, vmName string
		want               []string // keys, and substrings of the values
		permanent          bool
	}{
		{name: "running", kind: "running", vmName: "web42", want: []string{"host/web42",
			`"templates":["generic-host","web-server","db-server"]`, `"address":"10.0.0.42"`, `"address6":"2001:db8::42"`,
			`"vars.os":"debian"`, `"vars.web":"true"`, `"vars.owner":"alice"`, `"vars.vmglue_owner":"vmglue"`, `"vars.vmglue_vm":"one.42"`}},
		{name: "stopped gets a downtime", kind: "stopped", vmName: "web42", want: []string{"host/web42", "downtime/web42", "vmglue: VM one.42 vm.stopped (POWEROFF)"}},
		{name: "unknown keeps the host, no downtime", kind: "unknown", vmName: "web42", want: []string{"host/web42"}},
		{name: "deleted wants nothing", kind: "deleted", vmName: "web42"},
		{name: "bang refused", kind: "running", vmName: "vm!42", permanent: true},
		{name: "slash refused", kind: "running", vmName: "../etc", permanent: true},
		{name: "space refused", kind: "running", vmName: "a b", permanent: true},
		{name: "empty refused", kind: "running", vmName: "", permanent: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := tg.Desired(testVM(tc.kind, tc.vmName))
			if tc.permanent {
				if !worker.IsPermanent(err) {
					t.Fatalf("Desired = %v, %v; want a permanent error", want, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			all := ""
			for k, v := range want {
				all += k + " " + v + "\n"
			}
			keys := 0
			for _, w := range tc.want {
				if strings.HasPrefix(w, "host/") || strings.HasPrefix(w, "downtime/") {
					keys++
				}
				if !strings.Contains(all, w) {
					t.Errorf("desired lacks %s:\n%s", w, all)
				}
			}
			if len(want) != keys {
				t.Errorf("desired has %d objects, want %d:\n%s", len(want), keys, all)
			}
			if strings.Contains(all, "vars.none") || strings.Contains(all, "nosuch") {
				t.Errorf("unmapped value in %s", all)
			}
		})
	}
}

// Two serve processes share the bucket: each renders the complete file,
// the other's VMs included.
func TestFileSDSharedBucket(t *testing.T) {
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.URL)
	var targets [2]*Target
	var dirs [2]string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range targets {
		dirs[i] = t.TempDir()
		tg, err := New(Config{FileSD: &FileSDConfig{Dir: dirs[i], Jobs: []Job{{Name: "node", Port: 9100}}}},
			worker.Deps{Log: zerolog.Nop(), JS: js})
		if err != nil {
			t.Fatal(err)
		}
		targets[i] = tg
		go tg.RunBeside(ctx, nil)
	}
	for i, tg := range targets {
		vm := testVM("running", "vm")
		vm.ID = []string{"1", "2"}[i]
		vm.NICs = []eventbus.NIC{{IP: []string{"127.0.0.1", "127.0.0.2"}[i]}}
		want, err := tg.Desired(vm)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tg.Apply(ctx, worker.Request{VM: vm, Want: want}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range dirs {
		testenv.WaitFor(t, 10*time.Second, "both VMs in "+d, func() bool {
			e, err := ReadFile(filepath.Join(d, "node.json"))
			return err == nil && len(e) == 2 && e[0].Targets[0] == "127.0.0.1:9100" && e[1].Targets[0] == "127.0.0.2:9100"
		})
	}
}

func TestWriteAtomicLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "node.json")
	for _, s := range []string{"[]\n", "[{}]\n"} {
		if err := writeAtomic(p, []byte(s)); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != s {
			t.Fatalf("file %q, want %q", b, s)
		}
	}
	if files, _ := os.ReadDir(dir); len(files) != 1 {
		t.Fatalf("files left: %v", files)
	}
}

func TestDesiredTargets(t *testing.T) {
	tg := newTarget(t, Config{FileSD: &FileSDConfig{Dir: t.TempDir(), Jobs: []Job{
		{Name: "node", Port: 9100, Addresses: []string{"ip", "ip6_global"}, Labels: map[string]string{"os": "attribute:OS", "web": "label:web"}},
	}}})
	tests := []struct {
		name  string
		kind  string
		os    string
		want  string // substring of the entry; "" for no entry
		wantN int    // bytes of the os label, 0 to skip
	}{
		{name: "running", kind: "running", os: "debian",
			want: `{"targets":["10.0.0.42:9100","[2001:db8::42]:9100"],"labels":{"cloud":"one","os":"debian","vm_id":"42","vm_name":"web42","vm_owner":"alice","web":"true"}}`},
		{name: "migrating stays", kind: "migrating", os: "x", want: `"targets":["10.0.0.42:9100"`},
		{name: "changing stays", kind: "changing", os: "x", want: `"targets":["10.0.0.42:9100"`},
		{name: "unknown stays", kind: "unknown", os: "x", want: `"targets":["10.0.0.42:9100"`},
		{name: "stopped leaves", kind: "stopped"},
		{name: "created leaves", kind: "created"},
		{name: "deleted leaves", kind: "deleted"},
		{name: "quotes escaped", kind: "running", os: "a\"b\\\n}", want: `"os":"a\"b\\\n}"`},
		{name: "invalid utf-8 replaced", kind: "running", os: "a\xffb", want: "\"os\":\"a\uFFFDb\""},
		{name: "long value cut", kind: "running", os: strings.Repeat("é", 600), want: `"os":"éé`, wantN: 1024},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vm := testVM(tc.kind, "web42")
			vm.Attributes["OS"] = tc.os
			want, err := tg.Desired(vm)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := want["file_sd/node"]
			if tc.want == "" {
				if ok || len(want) != 0 {
					t.Fatalf("desired %v, want none", want)
				}
				return
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("entry %s\nwant it to contain %s", got, tc.want)
			}
			var e Entry
			if err := json.Unmarshal([]byte(got), &e); err != nil {
				t.Fatal(err)
			}
			if tc.wantN > 0 && len(e.Labels["os"]) != tc.wantN {
				t.Fatalf("os label is %d bytes, want %d", len(e.Labels["os"]), tc.wantN)
			}
		})
	}
}

// A process writes a file only once it has loaded the shared bucket: an
// Apply before that waits, and the file it writes holds the other
// processes' entries too.
func TestFileSDWaitsForTheBucket(t *testing.T) {
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.URL)
	cfg := Config{FileSD: &FileSDConfig{Dir: t.TempDir(), Jobs: []Job{{Name: "node", Port: 9100}}}}
	first, err := New(cfg, worker.Deps{Log: zerolog.Nop(), JS: js})
	if err != nil {
		t.Fatal(err)
	}
	other := testVM("running", "other")
	other.ID, other.NICs = "7", []eventbus.NIC{{IP: "127.0.0.7"}}
	want, _ := first.Desired(other)
	if _, err := first.store.put(context.Background(), "node", other.Key(), want["file_sd/node"]); err != nil {
		t.Fatal(err)
	}

	cfg.FileSD.Dir = t.TempDir()
	tg, err := New(cfg, worker.Deps{Log: zerolog.Nop(), JS: js})
	if err != nil {
		t.Fatal(err)
	}
	vm := testVM("running", "web42")
	want, _ = tg.Desired(vm)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := tg.Apply(ctx, worker.Request{VM: vm, Want: want}); err == nil {
		t.Fatal("Apply before the bucket was loaded succeeded")
	}
	file := filepath.Join(cfg.FileSD.Dir, "node.json")
	if _, err := os.Stat(file); err == nil {
		t.Fatal("a file was written before the bucket was loaded")
	}
	bg, stop := context.WithCancel(context.Background())
	defer stop()
	go tg.RunBeside(bg, nil)
	if _, err := tg.Apply(context.Background(), worker.Request{VM: vm, Want: want}); err != nil {
		t.Fatal(err)
	}
	e, err := ReadFile(file)
	if err != nil || len(e) != 2 {
		t.Fatalf("file entries %+v, %v; want the other process's VM and this one", e, err)
	}
}

// Resync rewrites a file_sd file removed by hand.
func TestFileSDResyncRewrites(t *testing.T) {
	dir := t.TempDir()
	tg := newTarget(t, Config{FileSD: &FileSDConfig{Dir: dir, Jobs: []Job{{Name: "node", Port: 9100}}}})
	vm := testVM("running", "web42")
	want, _ := tg.Desired(vm)
	if _, err := tg.Apply(context.Background(), worker.Request{VM: vm, Want: want}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "node.json")
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := tg.Resync(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if e, err := ReadFile(file); err != nil || len(e) != 1 {
		t.Fatalf("after resync: %+v, %v", e, err)
	}
}
