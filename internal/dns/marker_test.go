package dns

import (
	"errors"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

func installationTarget(t *testing.T, cfg Config, id string) *Target {
	t.Helper()
	tg, err := New(cfg, worker.Deps{Log: zerolog.Nop(), Installation: id})
	if err != nil {
		t.Fatalf("new target: %v", err)
	}
	t.Cleanup(func() { _ = tg.Close() })
	return tg
}

// TestMarkerMigration on a real BIND: records of the previous version
// (marker without vmglue/installation) are rewritten with the identity by
// the installation whose registry records them; another installation,
// or one whose registry lost them, finds a conflict and changes nothing.
func TestMarkerMigration(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	cfg := testConfig(b)
	vm := testVM("42", "web42", "10.0.0.42")
	old := mustConverge(t, newTarget(t, cfg), vm, nil)
	oldMarker := old["TXT web42.cloud.test."]
	if strings.Contains(oldMarker, "installation") {
		t.Fatalf("marker without identity %q", oldMarker)
	}

	for _, id := range []string{"vg-other", "vg-site-a"} {
		_, err := converge(t, t.Context(), installationTarget(t, cfg, id), vm, nil)
		if !worker.IsPermanent(err) || !errors.Is(err, worker.ErrConflict) {
			t.Fatalf("installation %s without the registry: %v, want a conflict", id, err)
		}
		expect(t, b, "web42.cloud.test.", mdns.TypeTXT, oldMarker)
	}

	site := installationTarget(t, cfg, "vg-site-a")
	now := mustConverge(t, site, vm, old)
	want := "heritage=vmglue,vmglue/owner=vmglue,vmglue/installation=vg-site-a,vmglue/vm=one.42"
	if now["TXT web42.cloud.test."] != want {
		t.Fatalf("migrated marker %q, want %q", now["TXT web42.cloud.test."], want)
	}
	expect(t, b, "web42.cloud.test.", mdns.TypeTXT, want)
	expect(t, b, "web42.cloud.test.", mdns.TypeA, "10.0.0.42")

	// The other installation cannot delete it either.
	if _, err := converge(t, t.Context(), installationTarget(t, cfg, "vg-other"), vm, nil); !errors.Is(err, worker.ErrConflict) {
		t.Fatalf("other installation: %v, want a conflict", err)
	}
	expect(t, b, "web42.cloud.test.", mdns.TypeTXT, want)
}
