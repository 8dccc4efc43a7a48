package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/worker"
)

func TestSnapshotsMerge(t *testing.T) {
	running := func(seq int64, ip string) eventbus.VM {
		vm := testVM("1")
		vm.Version.Seq = seq
		vm.NICs[0].IP = ip
		return vm
	}
	deleted := func(seq int64) eventbus.VM {
		vm := testVM("1")
		vm.Kind, vm.NICs, vm.Version = eventbus.KindDeleted, nil, eventbus.Version{Deleted: true, Seq: seq}
		return vm
	}
	deletedKindOnly := func(seq int64) eventbus.VM {
		vm := deleted(seq)
		vm.Version.Deleted = false
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
		{"equal version, other content: incoming wins", []eventbus.VM{running(1, "10.0.0.1"), running(1, "10.0.0.9")}, running(1, "10.0.0.9")},
		{"deleted wins over newer seq", []eventbus.VM{running(5, "10.0.0.5"), deleted(1)}, deleted(1)},
		{"deleted is terminal", []eventbus.VM{deleted(1), running(9, "10.0.0.9")}, deleted(1)},
		{"newer deleted replaces deleted", []eventbus.VM{deleted(1), deleted(2)}, deleted(2)},
		{"deleted kind without Version.Deleted still wins", []eventbus.VM{running(5, "10.0.0.5"), deletedKindOnly(1)}, deletedKindOnly(1)},
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
				vm.Cloud = "c" + string(rune('a'+i)) // one VM key per case
				if got, err = snaps.Merge(ctx, &vm); err != nil {
					t.Fatal(err)
				}
			}
			tt.want.Cloud = "c" + string(rune('a'+i))
			stored, rev, err := snaps.Get(ctx, tt.want.Key())
			if err != nil || rev == 0 {
				t.Fatalf("get: rev %d, %v", rev, err)
			}
			for _, vm := range []*eventbus.VM{got, stored} {
				if vm.Version != tt.want.Version || vm.Kind != tt.want.Kind || len(vm.NICs) != len(tt.want.NICs) ||
					(len(vm.NICs) > 0 && vm.NICs[0].IP != tt.want.NICs[0].IP) {
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
