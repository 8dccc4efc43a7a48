package faults

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/testenv"
)

// storedOnce waits until the event stream holds want messages, then counts
// the stored copies of each id: lost are the ids not stored, dups the
// copies beyond the first (both must be 0).
func storedOnce(t *testing.T, js jetstream.JetStream, ids []string, timeout time.Duration) (stored, lost, dups int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	st, err := js.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		t.Fatalf("event stream: %v", err)
	}
	// Every id is in the stream once the count is reached; more copies
	// would only add to it, so a short count is waited for, not judged.
	_ = testenv.Poll(ctx, timeout, func() bool {
		info, err := st.Info(ctx)
		return err == nil && info.State.Msgs >= uint64(len(ids))
	})
	count := map[string]int{}
	for _, ev := range natstest.Events(t, js) {
		count[ev.ID]++
		stored++
	}
	for _, id := range ids {
		switch n := count[id]; {
		case n == 0:
			lost++
		case n > 1:
			dups += n - 1
		}
	}
	if foreign := stored - len(ids) + lost - dups; foreign != 0 {
		t.Errorf("the stream holds %d events of no run", foreign)
	}
	return stored, lost, dups
}

// wantZones is the whole content of both zones once every VM of list is
// converged: A and the ownership TXT per name, PTR per address.
func wantZones(list []testenv.OneVM) map[string][]string {
	fwd := []string{"ns1." + forwardZone + " A 127.0.0.1"}
	var rev []string
	for _, v := range list {
		name := v.Name + "." + forwardZone
		ptr, _ := mdns.ReverseAddr(v.IP)
		fwd = append(fwd, name+" A "+v.IP, fmt.Sprintf("%s TXT heritage=vmglue,vmglue/owner=vmglue,vmglue/installation=%s,vmglue/vm=one.%d", name, installation, v.ID))
		rev = append(rev, ptr+" PTR "+name)
	}
	slices.Sort(fwd)
	slices.Sort(rev)
	return map[string][]string{forwardZone: fwd, reverseZone: rev}
}

// awaitZones polls both zones by AXFR until they hold exactly want, and
// returns when they first did; it fails the test after timeout with the
// difference.
func awaitZones(t *testing.T, b *testenv.DNS, want map[string][]string, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		equal, diff := true, ""
		for zone, w := range want {
			got := b.Zone(t, zone)
			if !slices.Equal(got, w) {
				equal = false
				diff += fmt.Sprintf("zone %s: %d records, want %d; %s\n", zone, len(got), len(w), firstDiff(got, w))
			}
		}
		if equal {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("zones not converged after %s:\n%s", timeout, diff)
		}
		<-tick.C
	}
}

// firstDiff names one record missing from got and one not wanted.
func firstDiff(got, want []string) string {
	s := ""
	for _, w := range want {
		if !slices.Contains(got, w) {
			s += "missing " + w + "; "
			break
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			s += "unexpected " + g
			break
		}
	}
	return s
}

// duplicateChanges reads BIND's journal of each zone: every wanted record
// (but the zone file's ns1) must have been added exactly once and nothing
// deleted. It returns the changes beyond that (0: no side effect was
// applied twice) and reports each as a test error.
func duplicateChanges(t *testing.T, b *testenv.DNS, want map[string][]string) int {
	t.Helper()
	extra := 0
	for zone, w := range want {
		adds := map[string]int{}
		for _, c := range b.JournalChanges(t, zone) {
			if c[:4] != "add " {
				extra++
				t.Errorf("zone %s journal: %s", zone, c)
				continue
			}
			adds[c[4:]]++
		}
		for _, rec := range w {
			if rec == "ns1."+forwardZone+" A 127.0.0.1" {
				continue
			}
			if n := adds[rec]; n != 1 {
				t.Errorf("zone %s journal: %s added %d times, want 1", zone, rec, n)
			}
			extra += max(adds[rec]-1, 0)
			delete(adds, rec)
		}
		for rec, n := range adds {
			extra += n
			t.Errorf("zone %s journal: %s added %d times, not wanted", zone, rec, n)
		}
	}
	return extra
}
