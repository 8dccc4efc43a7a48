package serve_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// Two installations (two serve processes on their own buses, default
// owner_id and cloud "one") share a real BIND zone and both have a VM
// one/42 named web42. Each generated its own installation identity, kept
// across a restart; the second one's VM is a conflict, and its delete
// leaves the first one's records alone.
func TestDNSTwoInstallationsShareZone(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	cfgA := dnsConfig(t, b, "")
	a := start(t, cfgA)
	bb := start(t, dnsConfig(t, b, ""))
	idA, idB := a.Info.Installation, bb.Info.Installation
	if !strings.HasPrefix(idA, "vg-") || !strings.HasPrefix(idB, "vg-") || idA == idB {
		t.Fatalf("installations %q and %q, want two generated, different", idA, idB)
	}
	t0 := time.Now().Unix()
	v := running(42, "web42", "10.0.0.42", "", t0)
	hook(t, a, t.TempDir(), v, "running")
	testenv.WaitFor(t, 20*time.Second, "A record of installation A", resolves(t, b, "web42.cloud.test.", mdns.TypeA, "10.0.0.42"))
	txt := b.Lookup(t, "web42.cloud.test.", mdns.TypeTXT)
	if len(txt) != 1 || !strings.Contains(txt[0], "vmglue/installation="+idA) {
		t.Fatalf("marker %q, want one naming installation %s", txt, idA)
	}

	_, jsB := bb.connect(t)
	other := running(42, "web42", "10.0.0.43", "", t0)
	spoolB := t.TempDir()
	hook(t, bb, spoolB, other, "running")
	var dl []worker.DeadLetter
	testenv.WaitFor(t, 20*time.Second, "dead letter in installation B", func() bool { dl = deadLetters(t, jsB); return len(dl) > 0 })
	if dl[0].Reason != worker.ReasonConflict || !strings.Contains(dl[0].Error, "web42.cloud.test") {
		t.Fatalf("dead letter %+v, want a conflict at web42.cloud.test", dl[0])
	}
	hook(t, bb, spoolB, done(other), "done")
	idle(t, jsB, "dns")
	if got := b.Lookup(t, "web42.cloud.test.", mdns.TypeA); !slices.Equal(got, []string{"10.0.0.42"}) {
		t.Fatalf("installation B changed A's record: A %v", got)
	}
	if got := b.Lookup(t, "42.0.0.10.in-addr.arpa.", mdns.TypePTR); !slices.Equal(got, []string{"web42.cloud.test."}) {
		t.Fatalf("installation B changed A's PTR: %v", got)
	}
	if got := b.Lookup(t, "web42.cloud.test.", mdns.TypeTXT); !slices.Equal(got, txt) {
		t.Fatalf("installation B changed A's marker: %v", got)
	}

	// The identity is kept on the bus: a restarted A is the same installation.
	a.stop()
	if again := start(t, cfgA); again.Info.Installation != idA {
		t.Fatalf("installation after restart %q, want %q", again.Info.Installation, idA)
	}
}
