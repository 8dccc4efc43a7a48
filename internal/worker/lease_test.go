package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
)

// A converge's context reports the lease lost from the clock alone, before
// any goroutine cancels it (a process resumed after a pause runs its next
// target call before keep runs), and well before the server's TTL.
func TestLeaseContextCountsLostEarly(t *testing.T) {
	if leaseValid > eventbus.LockTTL*2/3 || leaseRenew*2 > leaseValid {
		t.Fatalf("lease counted valid %s, renewed every %s, server TTL %s: want two renewals within the validity, well below the TTL",
			leaseValid, leaseRenew, eventbus.LockTTL)
	}
	tests := []struct {
		name    string
		began   time.Time
		wantErr error
	}{
		{"fresh", time.Now(), nil},
		{"validity passed, not yet cancelled", time.Now().Add(-leaseValid - time.Millisecond), context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ls := newLease(nil, "dns.one.1", 1, tt.began)
			ctx := context.Context(leaseContext{Context: context.Background(), ls: ls})
			if err := ctx.Err(); !errors.Is(err, tt.wantErr) {
				t.Errorf("Err() = %v, want %v", err, tt.wantErr)
			}
			// A target's own derived context sees the lease's deadline.
			child, cancel := context.WithTimeout(context.WithValue(ctx, ctxKey{}, 1), time.Hour)
			defer cancel()
			d, ok := child.Deadline()
			if !ok || !d.Equal(tt.began.Add(leaseValid)) {
				t.Errorf("derived Deadline() = %s, %v; want %s", d, ok, tt.began.Add(leaseValid))
			}
			if tt.wantErr == nil {
				return
			}
			// Counted lost: not renewed (the server is not even asked).
			if err := ls.renew(context.Background()); !errors.Is(err, errLeaseExpired) {
				t.Errorf("renew of a lease counted lost: %v, want errLeaseExpired", err)
			}
		})
	}
}

type ctxKey struct{}

// A NATS request under a converge's lease ends when its reply is lost (a
// JetStream leader killed mid-request): the lease context has a deadline,
// so nats.go adds no timeout of its own, yet it is done only when the
// lease is lost; bounded gives each request its own timer.
func TestBoundedEndsARequestUnderALease(t *testing.T) {
	srv := natstest.Start(t)
	nc, _ := natstest.Connect(t, srv.URL)
	if _, err := nc.SubscribeSync("vmglue.test.silent"); err != nil { // never replies
		t.Fatal(err)
	}
	ls := newLease(nil, "dns.one.1", 1, time.Now())
	ctx, cancel := bounded(leaseContext{Context: context.Background(), ls: ls}, 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := nc.RequestWithContext(ctx, "vmglue.test.silent", nil)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("request: %v, want the bounded context's end", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a request without reply under the lease still waits after 5 s")
	}
}

// TestLeaseRelease: release, which does not wait for the server's answer,
// frees the lease, and never the lease another instance took meanwhile.
func TestLeaseRelease(t *testing.T) {
	ctx, a := lockBucket(t, "a")
	b := &leases{kv: a.kv, nc: a.nc, worker: a.worker, instance: "b"}
	kv := a.kv
	// holder waits until the lease of vm is held by instance ("" = free).
	holder := func(vm, instance string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			e, err := kv.Get(ctx, "dns."+vm)
			got := ""
			if err == nil {
				got = string(e.Value())
			} else if !eventbus.IsNoKey(err) {
				t.Fatal(err)
			}
			if got == instance {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("lease of %s held by %q, want %q", vm, got, instance)
			}
		}
	}

	ls, err := a.acquire(ctx, "one.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.acquire(ctx, "one.1"); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("second instance acquired a held lease: %v", err)
	}
	if err := ls.release(ctx); err != nil {
		t.Fatal(err)
	}
	holder("one.1", "")
	if _, err := b.acquire(ctx, "one.1"); err != nil {
		t.Fatalf("lease not free after release: %v", err)
	}

	// a's lease expired and b took it: a's late release leaves b's alone.
	old, err := a.acquire(ctx, "one.2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "dns.one.2", []byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := old.release(ctx); err != nil {
		t.Fatal(err)
	}
	// A request sent after the release is answered after the server
	// applied it.
	if _, err := a.acquire(ctx, "one.3"); err != nil {
		t.Fatal(err)
	}
	holder("one.2", "b")
}

// TestLeaseKeep: keep (started by keepAfter a renewal period into a long
// converge) renews at once, and reports a lease another instance took as
// lost, without a renewal period's wait.
func TestLeaseKeep(t *testing.T) {
	ctx, l := lockBucket(t, "a")
	kv := l.kv
	tests := []struct {
		name     string
		vm       string
		takeAway bool
	}{
		{"held: renewed", "one.1", false},
		{"taken by another instance: lost", "one.2", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ls, err := l.acquire(ctx, tt.vm)
			if err != nil {
				t.Fatal(err)
			}
			first := ls.revision()
			if tt.takeAway {
				if _, err := kv.Put(ctx, "dns."+tt.vm, []byte("b")); err != nil {
					t.Fatal(err)
				}
			}
			kctx, kcancel := context.WithCancel(ctx)
			lost := make(chan error, 1)
			done := make(chan struct{})
			go func() { defer close(done); ls.keep(kctx, func(err error) { lost <- err }) }()
			if tt.takeAway {
				select {
				case err := <-lost:
					if !IsCASConflict(err) {
						t.Fatalf("lost: %v, want a compare-and-set conflict", err)
					}
				case <-ctx.Done():
					t.Fatal("a lease taken away not reported lost")
				}
				<-done
				kcancel()
				return
			}
			for ls.revision() == first {
				select {
				case err := <-lost:
					t.Fatalf("held lease reported lost: %v", err)
				case <-ctx.Done():
					t.Fatal("lease not renewed")
				case <-time.After(5 * time.Millisecond): // polling interval
				}
			}
			kcancel()
			<-done
		})
	}
}

// lockBucket starts a provisioned nats-server and returns a context for
// the test (10s) and the dns worker's leases of instance on it.
func lockBucket(t *testing.T, instance string) (context.Context, *leases) {
	t.Helper()
	nc, js := natstest.Connect(t, natstest.Start(t).URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	kv, err := js.KeyValue(ctx, eventbus.BucketLocks)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, &leases{kv: kv, nc: nc, worker: "dns", instance: instance}
}

// A request bounded under a lease whose validity has passed (a paused
// process resumed) fails at once, as under the lease itself: bounded keeps
// the lease's expiry, not only its own timer (TestTwoServesPausedInstanceSendsNothing
// once saw a resumed converge go on with its registry reads).
func TestBoundedKeepsLeaseExpiry(t *testing.T) {
	ls := newLease(nil, "dns.one.1", 1, time.Now().Add(-leaseValid-time.Second))
	ctx, cancel := bounded(leaseContext{Context: context.Background(), ls: ls}, time.Minute)
	defer cancel()
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("bounded under an expired lease: Err %v, want the lease's DeadlineExceeded", ctx.Err())
	}
	if d, ok := ctx.Deadline(); !ok || time.Now().Before(d) {
		t.Fatalf("bounded under an expired lease: Deadline %v %v, want the past validity", d, ok)
	}
}
