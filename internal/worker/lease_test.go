package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
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
