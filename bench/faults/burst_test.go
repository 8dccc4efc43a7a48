package faults

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
)

// Two serve processes converge a burst; one is SIGKILLed once a third of
// it is published. The other finishes: what the dead one held comes back
// when JetStream redelivers it and its leases expire (eventbus.LockTTL).
func testServeKill(t *testing.T) {
	s := newStack(t, "info")
	a := s.startServe(t, "A")
	s.startServe(t, "B")
	list := vms(*burst)
	want := wantZones(list)
	var killed time.Time
	at := 0
	start := time.Now()
	ids := publishBurst(t, s.cluster.URLs(), list, map[int]func(){len(list) / 3: func() {
		at = addresses(t, s.bind)
		a.signal(t, syscall.SIGKILL)
		killed = time.Now()
	}})
	published := time.Since(start)
	converged := awaitZones(t, s.bind, want, 3*time.Minute)
	stored, lost, dups := storedOnce(t, s.js, ids, time.Minute)
	extra := duplicateChanges(t, s.bind, want)
	if lost != 0 || dups != 0 {
		t.Errorf("events: %d lost, %d stored more than once", lost, dups)
	}
	row("serve-kill: burst %d VMs (published in %.1f s), serve A SIGKILLed after %d published, %d converged; "+
		"B converged the other %d, done %.1f s after the kill (lease TTL %s; %.1f s in all); stored %d, lost %d, duplicates %d, DNS changes applied twice %d",
		len(list), published.Seconds(), len(list)/3, at, len(list)-at, converged.Sub(killed).Seconds(), eventbus.LockTTL, converged.Sub(start).Seconds(),
		stored, lost, dups, extra)
}

// The same burst, published before any serve runs, converged by one and
// by two serve processes started together, each run on a fresh cluster
// and BIND: from the start of the processes until both zones hold every
// record (serve's start-up, about the same for both, is in it).
func testThroughput(t *testing.T) {
	took := map[int]time.Duration{}
	for _, serves := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d-serve", serves), func(t *testing.T) {
			s := newStack(t, "info")
			list := vms(*burst)
			want := wantZones(list)
			ids := publishBurst(t, s.cluster.URLs(), list, nil)
			start := time.Now()
			procs := make([]*serveProc, serves)
			for i := range procs {
				procs[i] = s.launchServe(t, string(rune('A'+i)))
			}
			for _, p := range procs {
				p.waitReady(t)
			}
			converged := awaitZones(t, s.bind, want, 5*time.Minute)
			took[serves] = converged.Sub(start)
			if _, lost, dups := storedOnce(t, s.js, ids, time.Minute); lost != 0 || dups != 0 {
				t.Errorf("events: %d lost, %d stored more than once", lost, dups)
			}
			if extra := duplicateChanges(t, s.bind, want); extra != 0 {
				t.Errorf("%d DNS changes applied twice", extra)
			}
		})
	}
	if t.Failed() {
		return
	}
	perSec := func(d time.Duration) float64 { return float64(*burst) / d.Seconds() }
	row("throughput: burst %d VMs published, then serve started until every A/PTR/TXT is in BIND: 1 serve %.1f s (%.0f VMs/s), 2 serves %.1f s (%.0f VMs/s), x%.2f",
		*burst, took[1].Seconds(), perSec(took[1]), took[2].Seconds(), perSec(took[2]), took[1].Seconds()/took[2].Seconds())
}

// addresses counts the A records of VMs in the forward zone (AXFR).
func addresses(t *testing.T, b *testenv.DNS) int {
	t.Helper()
	n := 0
	for _, rec := range b.Zone(t, forwardZone) {
		if f := strings.Fields(rec); len(f) == 3 && f[1] == mdns.TypeToString[mdns.TypeA] && strings.HasPrefix(f[0], "vm") {
			n++
		}
	}
	return n
}
