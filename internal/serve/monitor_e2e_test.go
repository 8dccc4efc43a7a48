package serve_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/monitor"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// monitorConfig points the monitor worker at a real Icinga2 (least-privilege
// user, its CA, password from a file) and a file_sd directory with one job
// "node" on port 9100.
func monitorConfig(t *testing.T, ic *testenv.Icinga, sdDir string) *config.Config {
	t.Helper()
	cfg := baseConfig(t)
	raw := fmt.Sprintf(`owner_id: e2e
icinga:
  url: %s
  user: %s
  password_file: %s
  ca_file: %s
  timeout: 2s
  templates: [generic-host]
  label_templates: {web: web-server}
  template_attribute: ROLE
  vars: {os: "attribute:OS"}
file_sd:
  dir: %s
  jobs:
    - {name: node, port: 9100, labels: {os: "attribute:OS", role: "attribute:ROLE"}}
`, ic.URL, ic.User, ic.PasswordFile, ic.CAFile, sdDir)
	cfg.Workers = loadWorker(t, "monitor", raw)
	return cfg
}

// sdTargets returns the entries of a file_sd file by target.
func sdTargets(t *testing.T, file string) map[string]map[string]string {
	t.Helper()
	entries, err := monitor.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, e := range entries {
		for _, tg := range e.Targets {
			out[tg] = e.Labels
		}
	}
	return out
}

func vmglueDowntimes(ic *testenv.Icinga, host string) []testenv.IcingaDowntime {
	var out []testenv.IcingaDowntime
	for _, d := range ic.Downtimes(host) {
		if d.Author == "vmglue" {
			out = append(out, d)
		}
	}
	return out
}

// The monitoring slice from the hook: boot → Icinga host and Prometheus
// target; poweroff → downtime; running → downtime gone; delete while
// Icinga is down → converged when it is back; target dropped by Prometheus.
func TestMonitorHookToIcingaAndPrometheus(t *testing.T) {
	ic := testenv.StartIcinga(t)
	sdDir := t.TempDir()
	prom := testenv.StartPrometheus(t, sdDir)
	cfg := monitorConfig(t, ic, sdDir)
	cfg.Metrics.Listen = "127.0.0.1:0"
	in := start(t, cfg)
	_, js := in.connect(t)
	spool := t.TempDir()
	file := filepath.Join(sdDir, "node.json")

	v := running(42, "mon42", "127.0.0.42", "", time.Now().Unix())
	v.UserAttr = map[string]string{"OS": "debian", "ROLE": "web"}
	hook(t, in, spool, v, "running")
	var h *testenv.IcingaHost
	testenv.WaitFor(t, 20*time.Second, "icinga host mon42", func() bool { h = ic.Host("mon42"); return h != nil })
	if h.Address != "127.0.0.42" || !strings.HasPrefix(fmt.Sprint(h.Vars["vmglue_owner"]), "e2e/vg-") || h.Vars["os"] != "debian" ||
		h.Vars["role"] != "web" || h.Vars["vmglue_vm"] != "one.42" {
		t.Fatalf("host %+v", h)
	}
	if h.LastCheck > 0 {
		t.Fatalf("icinga checked the host (last_check %v): the checker must be off", h.LastCheck)
	}
	// The file is rendered from the bucket by serve's writer, after the
	// converge that also made the Icinga host: wait for it.
	var labels map[string]string
	testenv.WaitFor(t, 20*time.Second, "file_sd entry of mon42", func() bool {
		labels = sdTargets(t, file)["127.0.0.42:9100"]
		return labels != nil
	})
	if labels["vm_name"] != "mon42" || labels["os"] != "debian" || labels["vm_id"] != "42" {
		t.Fatalf("file_sd entry %v", labels)
	}
	tg := prom.WaitTarget("127.0.0.42:9100", true)
	if tg.Labels["vm_name"] != "mon42" || tg.Labels["os"] != "debian" || tg.Labels["cloud"] != "one" || tg.Labels["job"] != "vmglue" {
		t.Fatalf("prometheus target labels %v", tg.Labels)
	}

	off := v
	off.State, off.LCM, off.Time = 8, 0, v.Time+60 // POWEROFF
	hook(t, in, spool, off, "poweroff")
	testenv.WaitFor(t, 20*time.Second, "downtime of mon42", func() bool { return len(vmglueDowntimes(ic, "mon42")) > 0 })
	idle(t, js, "monitor")
	var services []string
	for _, d := range vmglueDowntimes(ic, "mon42") {
		if !strings.Contains(d.Comment, "one.42") || !strings.Contains(d.Comment, "stopped") {
			t.Fatalf("downtime comment %q does not name the event", d.Comment)
		}
		services = append(services, d.ServiceName)
	}
	if !slices.Equal(services, []string{"", "http"}) && !slices.Equal(services, []string{"http", ""}) {
		t.Fatalf("downtimes of services %q, want the host's and its service http's", services)
	}
	idle(t, js, "monitor")
	// The writer renders the file after the converge: a powered-off VM
	// leaves the job (present kinds: running).
	testenv.WaitFor(t, 20*time.Second, "powered-off VM out of file_sd", func() bool {
		_, ok := sdTargets(t, file)["127.0.0.42:9100"]
		return !ok
	})

	// An operator's own downtime of the host is not vmglue's to remove.
	now := time.Now().Unix()
	if code, b := ic.Do("POST", "/v1/actions/schedule-downtime", map[string]any{"type": "Host", "filter": `host.name=="mon42"`,
		"author": "ops", "comment": "maintenance", "start_time": now, "end_time": now + 3600, "fixed": true}); code != 200 {
		t.Fatalf("operator downtime: %d %s", code, b)
	}
	on := v
	on.Time = v.Time + 120
	hook(t, in, spool, on, "running")
	testenv.WaitFor(t, 20*time.Second, "downtime removed", func() bool { return len(vmglueDowntimes(ic, "mon42")) == 0 })
	if d := ic.Downtimes("mon42"); len(d) != 1 || d[0].Author != "ops" {
		t.Fatalf("downtimes after running again: %+v, want only the operator's", d)
	}
	testenv.WaitFor(t, 20*time.Second, "target back", func() bool { _, ok := sdTargets(t, file)["127.0.0.42:9100"]; return ok })

	// Icinga is down when the VM is deleted: retried until it is back.
	reg, err := worker.OpenRegistry(context.Background(), js, "monitor")
	if err != nil {
		t.Fatal(err)
	}
	ic.Stop()
	hook(t, in, spool, done(on), "done")
	testenv.WaitFor(t, 20*time.Second, "a failed delete recorded", func() bool {
		r, _, err := reg.Get(context.Background(), "one.42")
		return err == nil && r != nil && r.Error != ""
	})
	ic.Start()
	testenv.WaitFor(t, 30*time.Second, "host deleted", func() bool { return ic.Host("mon42") == nil })
	testenv.WaitFor(t, 20*time.Second, "target removed", func() bool { return len(sdTargets(t, file)) == 0 })
	prom.WaitTarget("127.0.0.42:9100", false)
	awaitMetrics(t, in, `vmglue_monitor_icinga_requests_total{code="200",op="create_host"} 1`,
		`vmglue_monitor_file_sd_targets{job="node"} 0`, "vmglue_monitor_icinga_up 1")
}

// A host of the operator under the VM's name stays untouched, and the
// event is dead-lettered as a conflict; the VM's delete leaves it too.
func TestMonitorForeignHostDeadLettered(t *testing.T) {
	ic := testenv.StartIcinga(t)
	code, b := ic.Do("PUT", "/v1/objects/hosts/db7", map[string]any{"templates": []string{"generic-host"},
		"attrs": map[string]any{"address": "127.0.0.9", "vars.owner": "ops"}})
	if code != 200 {
		t.Fatalf("plant host: %d %s", code, b)
	}
	in := start(t, monitorConfig(t, ic, t.TempDir()))
	_, js := in.connect(t)
	v := running(7, "db7", "127.0.0.7", "", time.Now().Unix())
	hook(t, in, t.TempDir(), v, "running")
	var dl []worker.DeadLetter
	testenv.WaitFor(t, 20*time.Second, "dead letter", func() bool { dl = deadLetters(t, js); return len(dl) > 0 })
	if dl[0].Worker != "monitor" || dl[0].Reason != worker.ReasonConflict || !strings.Contains(dl[0].Error, "db7") {
		t.Fatalf("dead letter %+v", dl[0])
	}
	untouched := func(when string) {
		t.Helper()
		h := ic.Host("db7")
		if h == nil || h.Address != "127.0.0.9" || h.Vars["owner"] != "ops" || h.Vars["vmglue_owner"] != nil {
			t.Fatalf("%s: foreign host changed: %+v", when, h)
		}
	}
	untouched("after the boot")
	hook(t, in, t.TempDir(), done(v), "done")
	idle(t, js, "monitor")
	untouched("after the delete")
}

// Tenant values Prometheus would choke on in a hand-written file (quotes,
// backslashes, newlines, braces, long values) are escaped: the real
// Prometheus still loads the file and shows the labels.
func TestMonitorHostileLabelsPrometheusLoads(t *testing.T) {
	sdDir := t.TempDir()
	prom := testenv.StartPrometheus(t, sdDir)
	cfg := baseConfig(t)
	cfg.Workers = loadWorker(t, "monitor", fmt.Sprintf(`file_sd:
  dir: %s
  jobs: [{name: node, port: 9100, labels: {os: "attribute:OS", role: "attribute:ROLE"}}]
`, sdDir))
	in := start(t, cfg)
	hostile := "a\"b\\c\n}]{[ ,'x' " + strings.Repeat("é", 700)
	v := running(5, `we"b]5`, "127.0.0.5", "", time.Now().Unix())
	v.UserAttr = map[string]string{"OS": hostile, "ROLE": "{{.Name}} $(reboot)"}
	hook(t, in, t.TempDir(), v, "running")
	ok := running(6, "plain6", "127.0.0.6", "", time.Now().Unix())
	hook(t, in, t.TempDir(), ok, "running")
	tg := prom.WaitTarget("127.0.0.5:9100", true)
	prom.WaitTarget("127.0.0.6:9100", true)
	if tg.Labels["vm_name"] != `we"b]5` || tg.Labels["role"] != "{{.Name}} $(reboot)" || !strings.HasPrefix(tg.Labels["os"], "a\"b\\c\n}]{[") {
		t.Fatalf("labels %q", tg.Labels)
	}
	if len(tg.Labels["os"]) > 1024 {
		t.Fatalf("label os is %d bytes, want at most 1024", len(tg.Labels["os"]))
	}
}
