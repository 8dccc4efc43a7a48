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
