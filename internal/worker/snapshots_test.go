package worker_test

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/hooks/delivery"
	"github.com/vmglue/vmglue/internal/worker"
)

func TestSnapshotsMerge(t *testing.T) {
	running := func(seq int64, ip string) eventbus.VM {
		vm := testVM("1")
		vm.Version.Seq = seq
		vm.NICs[0].IP = ip
		return vm
	}
	// hotplug is a RUNNING snapshot after a NIC hotplug: SEQ, STIME and
	// LAST_POLL unchanged, only the NICs and the time the source saw it
	// differ.
	hotplug := func(seen int64, ips ...string) eventbus.VM {
		vm := running(1, ips[0])
		for i, ip := range ips[1:] {
			vm.NICs = append(vm.NICs, eventbus.NIC{ID: strconv.Itoa(i + 1), IP: ip})
		}
		vm.Version.Seen = seen
		return vm
	}
	deleted := func(seq int64) eventbus.VM {
		vm := testVM("1")
		vm.Kind, vm.NICs, vm.Version = eventbus.KindDeleted, nil, eventbus.Version{Seq: seq}
		return vm
	}
	// An equal version with other content: the digest decides, so both
	// orders end on the same snapshot.
	x, y := running(1, "10.0.0.1"), running(1, "10.0.0.9")
	x.Cloud, y.Cloud = "tie", "tie" // the digest covers the cloud
	tieWinner := x
	if eventbus.Compare(&y, &x) > 0 {
		tieWinner = y
	}
	a, b := hotplug(100, "10.0.0.1"), hotplug(200, "10.0.0.1", "10.0.0.2")
	// A failed shutdown (issue 16): RUNNING (from BOOT), SHUTDOWN (from
	// RUNNING), RUNNING again (from SHUTDOWN). oned moves no time and no
	// SEQ: only the transition and Seen tell them apart.
	step := func(seen int64, lcm, prevLCM string) eventbus.VM {
		vm := running(1, "10.0.0.1")
		vm.LCMState, vm.PrevState, vm.PrevLCMState, vm.Version.Seen = lcm, "ACTIVE", prevLCM, seen
		if lcm == "SHUTDOWN" {
			vm.Kind = eventbus.KindStopping
		}
		return vm
	}
	up, down, back := step(100, "RUNNING", "BOOT"), step(200, "SHUTDOWN", "RUNNING"), step(300, "RUNNING", "SHUTDOWN")
	off := step(500, "LCM_INIT", "SHUTDOWN")
	off.State, off.Kind = "POWEROFF", eventbus.KindStopped
	swept := func(seen int64) eventbus.VM { // the sweep's RUNNING: no transition
		vm := step(seen, "RUNNING", "")
		vm.PrevState = ""
		return vm
	}
	tests := []struct {
		name   string
		merges []eventbus.VM
		want   eventbus.VM
	}{
		{"first snapshot stored", []eventbus.VM{running(1, "10.0.0.1")}, running(1, "10.0.0.1")},
		{"newer replaces older", []eventbus.VM{running(1, "10.0.0.1"), running(2, "10.0.0.2")}, running(2, "10.0.0.2")},
		{"older never replaces newer", []eventbus.VM{running(2, "10.0.0.2"), running(1, "10.0.0.1")}, running(2, "10.0.0.2")},
		{"equal version, other content: one winner", []eventbus.VM{x, y}, tieWinner},
		{"hotplug A, B, A: ends on B", []eventbus.VM{a, b, a}, b},
		{"hotplug B before A: ends on B", []eventbus.VM{b, a}, b},
		{"late copy of A seen after B (retried hook, second source): ends on B", []eventbus.VM{a, b, hotplug(300, "10.0.0.1")}, b},
		{"a new observation after B is not a copy", []eventbus.VM{a, b, hotplug(300, "10.0.0.3")}, hotplug(300, "10.0.0.3")},
		{"the same snapshot seen again changes nothing", []eventbus.VM{a, hotplug(150, "10.0.0.1")}, a},
		{"failed shutdown: up, down, back ends on back", []eventbus.VM{up, down, back}, back},
		{"late copy of down after back (retried hook, or a second identical shutdown) loses", []eventbus.VM{up, down, back, step(400, "SHUTDOWN", "RUNNING")}, back},
		{"late copy of up after down is still a copy", []eventbus.VM{up, down, step(300, "RUNNING", "BOOT")}, down},
		{"the listener's copy of back after the hook's changes nothing", []eventbus.VM{up, down, back, step(310, "RUNNING", "SHUTDOWN")}, back},
		{"the sweep's RUNNING after down is a return", []eventbus.VM{up, down, swept(300)}, swept(300)},
		{"the sweep's later RUNNING after back: the same content, stored", []eventbus.VM{up, down, back, swept(350)}, swept(350)},
		// The limit: a second shutdown after a failed one, nothing else
		// changed, is down's observation again (the row above); the
		// poweroff that follows is not.
		{"after a second identical shutdown the poweroff wins", []eventbus.VM{up, down, back, step(400, "SHUTDOWN", "RUNNING"), off}, off},
		{"back arrives before down: down, run earlier, loses", []eventbus.VM{up, back, down}, back},
		{"a copy of up arrives before down: down wins", []eventbus.VM{up, step(150, "RUNNING", "BOOT"), down}, down},
		{"deleted wins over newer seq", []eventbus.VM{running(5, "10.0.0.5"), deleted(1)}, deleted(1)},
		{"deleted is terminal", []eventbus.VM{deleted(1), running(9, "10.0.0.9")}, deleted(1)},
		{"newer deleted replaces deleted", []eventbus.VM{deleted(1), deleted(2)}, deleted(2)},
	}
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snaps, err := worker.OpenSnapshots(ctx, js)
			if err != nil {
				t.Fatal(err)
			}
			var got *eventbus.VM
			for _, vm := range tt.merges {
				if vm.Cloud != "tie" {
					vm.Cloud = "c" + strconv.Itoa(i) // one VM key per case
				}
				if got, err = snaps.Merge(ctx, &vm); err != nil {
					t.Fatal(err)
				}
			}
			if tt.want.Cloud != "tie" {
				tt.want.Cloud = "c" + strconv.Itoa(i)
			}
			stored, rev, err := snaps.Get(ctx, tt.want.Key())
			if err != nil || rev == 0 {
				t.Fatalf("get: rev %d, %v", rev, err)
			}
			for _, vm := range []*eventbus.VM{got, stored} {
				if !reflect.DeepEqual(*vm, tt.want) {
					t.Fatalf("newest %+v, want %+v", vm, tt.want)
				}
			}
		})
	}
	snaps, _ := worker.OpenSnapshots(ctx, js)
	all, err := snaps.List(ctx)
	if err != nil || len(all) != len(tests) {
		t.Fatalf("list: %d snapshots, %v", len(all), err)
	}
	if vm, rev, err := snaps.Get(ctx, "nope.1"); vm != nil || rev != 0 || err != nil {
		t.Fatalf("get of an unknown VM: %v %d %v", vm, rev, err)
	}
}

// TestSnapshotsLegacyEvent: an event from before Seen, with the old
// version.deleted field, still decodes and orders as before.
func TestSnapshotsLegacyEvent(t *testing.T) {
	old := `{"specversion":"1.0","id":"one-7-deleted-3-x","source":"opennebula://one","type":"vm.deleted",
		"subject":"vm/7","time":"2025-11-22T05:42:00Z","datacontenttype":"application/json","vmglueversion":"1",
		"data":{"cloud":"one","cloud_type":"opennebula","id":"7","name":"web7","state":"DONE","kind":"deleted","nics":[],
		"version":{"deleted":true,"seq":3,"changed":1763790050000000000,"observed":1763790120000000000}}}`
	ev, err := eventbus.Unmarshal([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	want := eventbus.Version{Seq: 3, Changed: 1763790050000000000, Observed: 1763790120000000000}
	if !ev.Data.Deleted() || ev.Data.Version != want {
		t.Fatalf("decoded deleted=%t version %+v, want deleted and %+v", ev.Data.Deleted(), ev.Data.Version, want)
	}
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	snaps, err := worker.OpenSnapshots(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	alive := ev.Data
	alive.Kind, alive.State, alive.Version.Seq = eventbus.KindRunning, "ACTIVE", 9
	for _, vm := range []eventbus.VM{alive, ev.Data, alive} {
		if _, err := snaps.Merge(ctx, &vm); err != nil {
			t.Fatal(err)
		}
	}
	if got, _, err := snaps.Get(ctx, "one.7"); err != nil || got == nil || !got.Deleted() {
		t.Fatalf("newest %+v (%v), want the deleted one", got, err)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := worker.Backoff{Base: time.Second, Max: 5 * time.Minute, Jitter: 0.2}
	tests := []struct {
		name     string
		n        int
		min, max time.Duration
	}{
		{"first retry", 1, 800 * time.Millisecond, time.Second},
		{"doubles", 3, 3200 * time.Millisecond, 4 * time.Second},
		{"capped", 20, 4 * time.Minute, 5 * time.Minute},
		{"huge n capped", 1000, 4 * time.Minute, 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 100 {
				if d := b.Delay(tt.n); d < tt.min || d > tt.max {
					t.Fatalf("Delay(%d) = %s, want %s to %s", tt.n, d, tt.min, tt.max)
				}
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*worker.Options)
		want string
	}{
		{"defaults are valid", func(*worker.Options) {}, ""},
		{"max deliver", func(o *worker.Options) { o.MaxDeliver = -1 }, "max_deliver"},
		{"ack pending below concurrency", func(o *worker.Options) { o.MaxAckPending = 10; o.Concurrency = 20 }, "max_ack_pending"},
		{"backoff max below base", func(o *worker.Options) { o.Backoff.Max = time.Millisecond }, "backoff"},
		{"jitter", func(o *worker.Options) { o.Backoff.Jitter = 2 }, "jitter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o worker.Options
			tt.mod(&o)
			o.SetDefaults()
			err := o.Validate()
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate() = %v, want error naming %q", err, tt.want)
			}
		})
	}
}

// TestSnapshotsLateCopyAfterDuplicateWindow: a hotplug A then B, published
// through the shared delivery; a copy of A, spooled when its ack was lost,
// is flushed after the stream's duplicate window, so the stream stores it
// again. Merging the stream in order, as every worker does, ends on B.
func TestSnapshotsLateCopyAfterDuplicateWindow(t *testing.T) {
	const window = time.Second // the smallest the config allows
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eventbus.Provision(ctx, js, eventbus.ProvisionOptions{DuplicateWindow: window}); err != nil {
		t.Fatal(err)
	}
	a := testVM("7")
	a.Version.Seen = time.Now().UnixNano()
	b := a
	b.NICs = append([]eventbus.NIC{}, a.NICs...)
	b.NICs = append(b.NICs, eventbus.NIC{ID: "1", IP: "10.0.1.7"})
	b.Version.Seen = a.Version.Seen + int64(time.Millisecond)
	evA, err := eventbus.NewEvent(a)
	if err != nil {
		t.Fatal(err)
	}
	evB, err := eventbus.NewEvent(b)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := delivery.Open(delivery.Options{Conn: eventbus.ConnOptions{URL: s.URL}, SpoolDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, ev := range []*eventbus.Event{&evA, &evB} {
		if r := p.Publish(ctx, ev); r.Outcome != delivery.Published {
			t.Fatalf("publish %s: %v (%v)", ev.ID, r.Outcome, r.Err)
		}
	}
	if r := delivery.Keep(dir, &evA, errors.New("ack lost")); r.Outcome != delivery.Spooled {
		t.Fatalf("spool the copy: %v", r.SpoolErr)
	}
	// The duplicate window is a duration on the server's clock: let it pass.
	time.Sleep(window + 500*time.Millisecond)
	if n, err := p.Flush(ctx); n != 1 || err != nil {
		t.Fatalf("flush: sent %d, %v", n, err)
	}
	stored := natstest.Events(t, js)
	if len(stored) != 3 || stored[2].ID != evA.ID {
		t.Fatalf("stream holds %d events; want A, B and A's copy stored again after the window", len(stored))
	}
	snaps, err := worker.OpenSnapshots(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range stored {
		if _, err := snaps.Merge(ctx, &ev.Data); err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := snaps.Get(ctx, a.Key())
	if err != nil || got == nil || len(got.NICs) != 2 || got.Version != b.Version {
		t.Fatalf("newest %+v (%v), want B with two NICs", got, err)
	}
}

// TestRecordWithoutSnapshot: a converge that stores a VM's first snapshot
// does not read the registry (a new VM has no record); when an operator
// removed the snapshot of a VM that has one, the write of the pending
// intent fails, the retry reads the record, and the VM converges with its
// old objects replaced, none leaked.
func TestRecordWithoutSnapshot(t *testing.T) {
	h, m := start(t, nil)
	vm := testVM("gone")
	h.Publish(vm)
	h.WaitIdle()
	if rec := h.Record(&vm); rec == nil || len(rec.Applied) != 2 {
		t.Fatalf("record after the create: %+v, want 2 objects applied", rec)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := h.JS.KeyValue(ctx, eventbus.BucketVMs)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, vm.Key()); err != nil {
		t.Fatal(err)
	}
	renamed := vm
	renamed.Name = "other"
	renamed.Version.Seq++
	h.Publish(renamed)
	h.WaitIdle()
	if got := m.observe(&vm); len(got) != 0 {
		t.Fatalf("objects of the old name left behind: %v", got)
	}
	want := worker.Objects{"A other": "10.0.0.1", "TXT other": "web"}
	if got := m.observe(&renamed); !maps.Equal(got, want) {
		t.Fatalf("target holds %v, want %v", got, want)
	}
	if rec := h.Record(&renamed); rec == nil || !maps.Equal(rec.Applied, want) || len(rec.Pending) != 0 {
		t.Fatalf("record %+v, want applied %v", rec, want)
	}
	if n := metric(t, h, "vmglue_worker_events_total", "result", worker.ResultRetry); n != 1 {
		t.Fatalf("%v retries, want 1 (the pending write that found the record)", n)
	}
}
