package conformance

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/monitor"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

// The periodic verification (runtime.verify_interval) on the real Icinga
// (checker off) and the real files: a host deleted behind vmglue's back is
// re-created, an address changed by hand is set back, a file_sd file
// emptied by hand is written again, a downtime removed by hand is
// scheduled again; a host of the same name that is not
// marked vmglue's is left alone and reported (drift "foreign"), and so is a
// host marked vmglue's for a VM the registry does not know (drift
// "stray"). The metrics count each finding and repair.
func TestPeriodicVerification(t *testing.T) {
	ic := testenv.StartIcinga(t)
	dir := t.TempDir()
	tg, err := monitor.New(monitor.Config{OwnerID: "verify",
		Icinga: &monitor.IcingaConfig{URL: ic.URL, User: ic.User, PasswordFile: ic.PasswordFile, CAFile: ic.CAFile,
			Templates: []string{"generic-host"}},
		FileSD: &monitor.FileSDConfig{Dir: dir, Jobs: []monitor.Job{{Name: "node", Port: 9100}}},
	}, worker.Deps{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	h := workertest.NewHarness(t, tg.Name())
	o := workertest.TestOptions()
	o.VerifyInterval, o.VerifyRate = 100*time.Millisecond, 100
	h.StartRunner(tg, o)
	a, b, c := vm(t, "ver1"), vm(t, "ver2"), vm(t, "ver3")
	c.Kind, c.State, c.LCMState = "stopped", "POWEROFF", "" // a host with vmglue's downtime
	for _, v := range []eventbus.VM{a, b, c} {
		h.Publish(v)
	}
	h.WaitIdle()
	if ic.Host(a.Name) == nil || ic.Host(b.Name) == nil || len(ic.Downtimes(c.Name)) != 1 {
		t.Fatal("hosts or downtime not created")
	}
	counts := func(name, kind string) float64 { return h.Metric(name, "kind", kind) }
	const found, repaired = "vmglue_worker_drift_found_total", "vmglue_worker_drift_repaired_total"
	byHand := func(method, path string, body any) {
		t.Helper()
		if code, b := ic.Do(method, path, body); code != 200 {
			t.Fatalf("%s %s by hand: %d %s", method, path, code, b)
		}
	}

	// Each repair is awaited with its finding and its count: Apply makes
	// the object exist before the runtime counts the repair.
	rep := h.Metric(repaired, "", "")
	byHand("DELETE", "/v1/objects/hosts/"+a.Name+"?cascade=1", nil)
	h.Eventually("host re-created, drift missing counted", func() bool {
		return ic.Host(a.Name) != nil && counts(found, worker.DriftMissing) >= 1 && h.Metric(repaired, "", "") > rep
	})
	if hs := ic.Host(a.Name); hs.Address != "127.0.0.42" || hs.Vars["vmglue_owner"] != "verify" || hs.Vars["vmglue_vm"] != a.Key() {
		t.Fatalf("re-created host %+v", hs)
	}

	rep = h.Metric(repaired, "", "")
	byHand("POST", "/v1/objects/hosts/"+a.Name, map[string]any{"attrs": map[string]any{"address": "127.0.0.99"}})
	h.Eventually("address set back, drift wrong counted", func() bool {
		return ic.Host(a.Name).Address == "127.0.0.42" && counts(found, worker.DriftWrong) >= 1 && h.Metric(repaired, "", "") > rep
	})

	rep, missing := h.Metric(repaired, "", ""), counts(found, worker.DriftMissing)
	sd := filepath.Join(dir, "node.json")
	if err := os.WriteFile(sd, []byte("[]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.Eventually("file_sd written again, drift missing counted", func() bool {
		es, err := monitor.ReadFile(sd)
		return err == nil && len(es) == 2 && slices.Equal(es[0].Targets, []string{"127.0.0.42:9100"}) &&
			counts(found, worker.DriftMissing) > missing && h.Metric(repaired, "", "") > rep
	})
	rep = h.Metric(repaired, "", "")
	byHand("POST", "/v1/actions/remove-downtime", map[string]any{"type": "Downtime",
		"filter": "downtime.host_name==h", "filter_vars": map[string]string{"h": c.Name}})
	h.Eventually("downtime scheduled again", func() bool {
		d := ic.Downtimes(c.Name)
		return len(d) == 1 && d[0].Author == "vmglue" && h.Metric(repaired, "", "") > rep
	})

	if got := counts(found, worker.DriftStray); got != 0 {
		t.Fatalf("drift found stray %g before any stray host, want 0", got)
	}

	// b's host replaced by one of the operator (not marked), and a host
	// marked vmglue's for a VM vmglue does not know: both left alone.
	byHand("DELETE", "/v1/objects/hosts/"+b.Name+"?cascade=1", nil)
	byHand("PUT", "/v1/objects/hosts/"+b.Name, map[string]any{"templates": []string{"generic-host"},
		"attrs": map[string]any{"address": "127.0.0.9", "display_name": "operator's host"}})
	byHand("PUT", "/v1/objects/hosts/stray1", map[string]any{"templates": []string{"generic-host"},
		"attrs": map[string]any{"address": "127.0.0.8", "vars.vmglue_owner": "verify", "vars.vmglue_vm": "one.999"}})
	h.Eventually("foreign and stray hosts reported", func() bool {
		return counts(found, worker.DriftForeign) > 0 && counts(found, worker.DriftStray) > 0
	})
	passes := h.Metric("vmglue_worker_verifications_total", "", "")
	h.Eventually("another pass", func() bool { return h.Metric("vmglue_worker_verifications_total", "", "") >= passes+2 })
	if hs := ic.Host(b.Name); hs == nil || hs.Address != "127.0.0.9" || hs.Vars["vmglue_owner"] != nil {
		t.Fatalf("operator's host after verification: %+v", hs)
	}
	if hs := ic.Host("stray1"); hs == nil || hs.Address != "127.0.0.8" {
		t.Fatalf("stray host after verification: %+v", hs)
	}
	t.Logf("drift found: missing %g, wrong %g, foreign %g, stray %g; repaired %g; %g verifications",
		counts(found, worker.DriftMissing), counts(found, worker.DriftWrong), counts(found, worker.DriftForeign),
		counts(found, worker.DriftStray), h.Metric(repaired, "", ""), h.Metric("vmglue_worker_verifications_total", "", ""))
}
