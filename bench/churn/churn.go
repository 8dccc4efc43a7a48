// Package churn creates and deletes VMs the way a busy cloud does, against
// the state vmglue keeps: the snapshots in VMGLUE_VMS (compacted and their
// tombstones forgotten as serve does) and the lb worker's per-VM state on
// a real HAProxy. Its benchmark (`make bench-churn`) prints the heap and
// the bucket's size as the VMs go by, to show them flat; the tests of the
// packages (worker, lb) assert the bounds.
package churn

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/lb"
	"github.com/vmglue/vmglue/internal/worker"
)

// Run holds what one churn run works on.
type Run struct {
	JS        jetstream.JetStream
	Snapshots *worker.Snapshots
	LB        *lb.Target
	// Port is the service port the VMs join backend "web" with.
	Port int
}

// VM is VM number i, running on 127.0.0.1 in backend web.
func (r *Run) VM(i int) eventbus.VM {
	return eventbus.VM{Cloud: "one", CloudType: "opennebula", ID: fmt.Sprint(100000 + i), Name: fmt.Sprintf("churn%d", i),
		State: "ACTIVE", LCMState: "RUNNING", Kind: eventbus.KindRunning,
		NICs:       []eventbus.NIC{{ID: "0", Network: "lan", IP: "127.0.0.1"}},
		Attributes: map[string]string{lb.DefaultAttribute: fmt.Sprintf("web:%d", r.Port)},
		Version:    eventbus.Version{Seq: 1, Changed: time.Now().UnixNano()}}
}

// Converge stores vm's snapshot and converges the lb target from have,
// polling while a drain asks to be requeued, as the runtime would.
func (r *Run) Converge(ctx context.Context, vm eventbus.VM, have worker.Objects) (worker.Objects, error) {
	if _, err := r.Snapshots.Merge(ctx, &vm); err != nil {
		return have, err
	}
	want, err := r.LB.Desired(&vm)
	if err != nil {
		return have, err
	}
	for {
		have, err = r.LB.Apply(ctx, worker.Request{VM: &vm, Have: have, Want: want})
		var rq *worker.RequeueError
		if !errors.As(err, &rq) {
			return have, err
		}
		select {
		case <-ctx.Done():
			return have, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// Sweep is serve's periodic work: an lb Resync, then Compact and
// ForgetTombstones (here with no delay: every deleted VM is compacted and
// forgotten at once).
func (r *Run) Sweep(ctx context.Context) error {
	if err := r.LB.Resync(ctx, nil); err != nil {
		return err
	}
	if _, err := worker.Compact(ctx, r.JS, time.Now().Add(time.Second), zerolog.Nop()); err != nil {
		return err
	}
	_, err := worker.ForgetTombstones(ctx, r.JS, time.Now().Add(time.Second), zerolog.Nop())
	return err
}

// Size is the VMGLUE_VMS bucket's keys and bytes.
func (r *Run) Size(ctx context.Context) (values uint64, bytes uint64, err error) {
	kv, err := r.JS.KeyValue(ctx, eventbus.BucketVMs)
	if err != nil {
		return 0, 0, err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return 0, 0, err
	}
	return st.Values(), st.Bytes(), nil
}
