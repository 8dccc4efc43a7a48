package listen_test

import (
	"context"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/hooks/opennebula"
	"github.com/vmglue/vmglue/hooks/opennebula/onedtest"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// TestListenFailedShutdown: oned's messages of a shutdown that fails
// (RUNNING from BOOT, SHUTDOWN from RUNNING, RUNNING from SHUTDOWN, with no
// time or SEQ moved) are three events, not two: the return is not a
// duplicate of the first RUNNING. The SHUTDOWN message sent again is one,
// and merging what the stream holds ends on the return.
func TestListenFailedShutdown(t *testing.T) {
	srv := natstest.Start(t)
	oned := onedtest.Start(t)
	l := startListener(t, oned.Endpoint, openPublisher(t, srv.URL, t.TempDir()), nil)
	oned.WaitSubscribed(t, opennebula.StateKeyPrefix)
	up := testenv.OneVM{ID: 5, Name: "web5", IP: "10.0.0.5", State: 3, LCM: 3, PrevState: 3, PrevLCM: 2, Time: 1_750_000_000}
	down, back := up, up
	down.LCM, down.PrevLCM = 12, 3
	back.PrevLCM = 12
	for i, v := range []testenv.OneVM{up, down, back, down} {
		if err := oned.Publish(testenv.OneVMXML(v)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the listener's delivery", func() bool {
			return l.metrics.Messages("published")+l.metrics.Messages("duplicate") == float64(i+1)
		})
	}
	if p, d := l.metrics.Messages("published"), l.metrics.Messages("duplicate"); p != 3 || d != 1 {
		t.Fatalf("published %v, duplicates %v; want 3 changes stored and the SHUTDOWN sent again dropped", p, d)
	}
	_, js := natstest.Connect(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snaps, err := worker.OpenSnapshots(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	var got *eventbus.VM
	for _, ev := range natstest.Events(t, js) {
		if got, err = snaps.Merge(ctx, &ev.Data); err != nil {
			t.Fatal(err)
		}
	}
	if got.Kind != eventbus.KindRunning || got.PrevLCMState != "SHUTDOWN" {
		t.Fatalf("newest snapshot %s from %s/%s, want running from ACTIVE/SHUTDOWN", got.Kind, got.PrevState, got.PrevLCMState)
	}
}
