package testenv

import (
	"strings"
	"testing"
)

// TestIcinga starts the real Icinga2, creates a host from a template with the
// all-permission user and checks that no checker runs.
func TestIcinga(t *testing.T) {
	ic := StartIcinga(t)
	code, b := ic.Do("PUT", "/v1/objects/hosts/probe", map[string]any{
		"templates": []string{"generic-host"}, "attrs": map[string]any{"address": "127.0.0.42", "vars.x": "y"}})
	if code != 200 {
		t.Fatalf("create host: %d %s", code, b)
	}
	h := ic.Host("probe")
	if h == nil || h.Address != "127.0.0.42" || h.Vars["tier"] != "generic" || h.Vars["x"] != "y" {
		t.Fatalf("host %+v", h)
	}
	t.Logf("templates attr: %v", h.Templates)
	if code, b := ic.Do("GET", "/v1/objects/checkercomponents", nil); code != 200 || strings.Contains(string(b), `"name"`) {
		t.Fatalf("a checker runs: %d %s", code, b)
	}
	if got := ic.Downtimes("probe"); len(got) != 0 {
		t.Fatalf("downtimes %+v", got)
	}
}
