package conformance

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/internal/monitor"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// Failures against the real Icinga2: a wrong password is permanent, Icinga
// stopped is transient, an unknown template is permanent; no error carries
// the password.
func TestIcingaFailures(t *testing.T) {
	ic := testenv.StartIcinga(t)
	good, err := os.ReadFile(ic.PasswordFile)
	if err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("wrong-secret-xyz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		password  string
		templates []string
		stop      bool
		permanent bool
	}{
		{name: "wrong password", password: wrong, permanent: true},
		{name: "unknown template", password: ic.PasswordFile, templates: []string{"no-such-template"}, permanent: true},
		{name: "icinga stopped", password: ic.PasswordFile, stop: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg, err := monitor.New(monitor.Config{Icinga: &monitor.IcingaConfig{URL: ic.URL, User: ic.User,
				PasswordFile: tc.password, CAFile: ic.CAFile, Templates: tc.templates}}, worker.Deps{Log: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			if tc.stop {
				ic.Stop()
				defer ic.Start()
			}
			v := vm(t, "fail1")
			want, err := tg.Desired(&v)
			if err != nil {
				t.Fatal(err)
			}
			_, err = tg.Apply(context.Background(), worker.Request{VM: &v, Want: want})
			if err == nil || worker.IsPermanent(err) != tc.permanent {
				t.Fatalf("Apply: %v, want an error with permanent=%v", err, tc.permanent)
			}
			for _, secret := range []string{"wrong-secret-xyz", strings.TrimSpace(string(good))} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error shows the password: %v", err)
				}
			}
			t.Logf("%s: %v", tc.name, err)
		})
	}
}

// An address change updates the host in place: the downtime vmglue
// scheduled for the stopped VM stays (a re-created host would lose it).
func TestIcingaUpdateInPlace(t *testing.T) {
	ic := testenv.StartIcinga(t)
	tg := icingaTarget(t, ic)
	v := vm(t, "inplace1")
	v.Kind, v.State, v.LCMState = "stopped", "POWEROFF", ""
	have := worker.Objects{}
	apply := func() {
		t.Helper()
		want, err := tg.Desired(&v)
		if err != nil {
			t.Fatal(err)
		}
		if have, err = tg.Apply(context.Background(), worker.Request{VM: &v, Have: have, Want: want}); err != nil {
			t.Fatal(err)
		}
	}
	apply()
	before := ic.Downtimes(v.Name)
	if len(before) != 1 {
		t.Fatalf("downtimes %+v, want vmglue's", before)
	}
	v.NICs[0].IP = "127.0.0.77"
	apply()
	if h := ic.Host(v.Name); h == nil || h.Address != "127.0.0.77" {
		t.Fatalf("host %+v, want address 127.0.0.77", h)
	}
	// A re-created host would have lost the downtime, and the Apply would
	// have scheduled a new one, with another name.
	if after := ic.Downtimes(v.Name); len(after) != 1 || after[0].Name != before[0].Name {
		t.Fatalf("downtimes after the address change %+v, before %+v: the host was re-created", after, before)
	}
}

// Resync repairs drift: a host deleted by hand comes back with its
// downtime, an address changed by hand is set back, and a host that is no
// longer vmglue's is left alone.
func TestIcingaResyncRepairs(t *testing.T) {
	ic := testenv.StartIcinga(t)
	tg := icingaTarget(t, ic)
	v := vm(t, "resync1")
	v.Kind, v.State, v.LCMState = "stopped", "POWEROFF", ""
	want, err := tg.Desired(&v)
	if err != nil {
		t.Fatal(err)
	}
	have, err := tg.Apply(context.Background(), worker.Request{VM: &v, Want: want})
	if err != nil {
		t.Fatal(err)
	}
	applied := map[string]worker.Objects{v.Key(): have}
	resync := func() {
		t.Helper()
		if err := tg.Resync(context.Background(), applied); err != nil {
			t.Fatal(err)
		}
	}

	if code, b := ic.Do("DELETE", "/v1/objects/hosts/"+v.Name+"?cascade=1", nil); code != 200 {
		t.Fatalf("delete by hand: %d %s", code, b)
	}
	resync()
	if h := ic.Host(v.Name); h == nil || h.Address != "127.0.0.42" {
		t.Fatalf("host after resync: %+v", h)
	}
	if d := ic.Downtimes(v.Name); len(d) != 1 || d[0].Author != "vmglue" {
		t.Fatalf("downtimes after resync: %+v", d)
	}

	if code, b := ic.Do("POST", "/v1/objects/hosts/"+v.Name, map[string]any{"attrs": map[string]any{"address": "127.0.0.99"}}); code != 200 {
		t.Fatalf("modify by hand: %d %s", code, b)
	}
	resync()
	if h := ic.Host(v.Name); h == nil || h.Address != "127.0.0.42" {
		t.Fatalf("host after resync: %+v, want the address set back", h)
	}

	// The operator takes the host over (the ownership var changed): left alone.
	if code, b := ic.Do("POST", "/v1/objects/hosts/"+v.Name, map[string]any{"attrs": map[string]any{
		"vars.vmglue_owner": "ops", "address": "127.0.0.98"}}); code != 200 {
		t.Fatalf("take over: %d %s", code, b)
	}
	resync()
	if h := ic.Host(v.Name); h == nil || h.Address != "127.0.0.98" {
		t.Fatalf("host taken over by the operator was changed: %+v", h)
	}
}

// icingaTarget is a target with the Icinga output only, as the
// least-privilege user, importing generic-host.
func icingaTarget(t *testing.T, ic *testenv.Icinga) *monitor.Target {
	t.Helper()
	tg, err := monitor.New(monitor.Config{Icinga: &monitor.IcingaConfig{URL: ic.URL, User: ic.User,
		PasswordFile: ic.PasswordFile, CAFile: ic.CAFile, Templates: []string{"generic-host"}}}, worker.Deps{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return tg
}
