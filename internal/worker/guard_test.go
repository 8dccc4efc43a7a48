package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
	"github.com/vmglue/vmglue/internal/worker/workertest"
)

// A guarded repair that outlasts a renewal period keeps its lease: Guard
// renews it while fn runs, as a converge does, so another instance cannot
// take the VM meanwhile; once Guard returns the lease is free.
func TestGuardRenewsLease(t *testing.T) {
	bus := workertest.NewHarness(t, "mem")
	r, err := worker.New(bus.JS, newMemTarget("mem"), workertest.TestOptions(), workertest.Logger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	locks, err := bus.JS.KeyValue(ctx, eventbus.BucketLocks)
	if err != nil {
		t.Fatal(err)
	}
	const key = "mem.one.7"
	err = r.Guard(ctx, "one.7", func(worker.Objects) error {
		e, err := locks.Get(ctx, key)
		if err != nil {
			t.Fatalf("lease not held during fn: %v", err)
		}
		first := e.Revision()
		// Await a renewal: the key's revision moves while fn still runs.
		w, err := locks.Watch(ctx, key, jetstream.UpdatesOnly())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = w.Stop() }()
		for u := range w.Updates() {
			if u != nil && u.Revision() > first && u.Operation() == jetstream.KeyValuePut {
				return nil
			}
		}
		t.Fatal("watch ended before the lease was renewed")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Released: the key is gone (a delete marker) soon after Guard returns.
	for {
		if _, err := locks.Get(ctx, key); eventbus.IsNoKey(err) {
			break
		} else if ctx.Err() != nil {
			t.Fatal("lease still held after Guard returned")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
