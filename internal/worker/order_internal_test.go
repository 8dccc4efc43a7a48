package worker

import (
	"testing"
	"time"
)

// decideOrder: apply at once when everything settled, wait at most a
// poll (never past the limit) while something is unsettled, go on once
// the limit has passed.
func TestDecideOrder(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	const limit, poll = 2 * time.Minute, time.Second
	tests := []struct {
		name      string
		unsettled []string
		now       time.Time
		want      orderVerdict
	}{
		{"no dependency unsettled", nil, t0, orderVerdict{}},
		{"settled long after the limit", nil, t0.Add(time.Hour), orderVerdict{}},
		{"wait just begun", []string{"lb"}, t0, orderVerdict{wait: poll}},
		{"mid wait", []string{"lb", "monitor"}, t0.Add(time.Minute), orderVerdict{wait: poll}},
		{"less than a poll left", []string{"lb"}, t0.Add(limit - 300*time.Millisecond), orderVerdict{wait: 300 * time.Millisecond}},
		{"limit reached", []string{"lb"}, t0.Add(limit), orderVerdict{gaveUp: true}},
		{"limit passed (restart after a long outage)", []string{"monitor"}, t0.Add(time.Hour), orderVerdict{gaveUp: true}},
		{"clock behind the recorded start", []string{"lb"}, t0.Add(-time.Minute), orderVerdict{wait: poll}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decideOrder(tt.unsettled, t0, tt.now, limit, poll); got != tt.want {
				t.Fatalf("decideOrder(%v, +%s) = %+v, want %+v", tt.unsettled, tt.now.Sub(t0), got, tt.want)
			}
		})
	}
}

// A recorded wait counts only for the kind it was recorded for.
func TestWaitingFor(t *testing.T) {
	w := &Waiting{Kind: "deleted", Since: time.Now()}
	tests := []struct {
		name string
		rec  *Record
		kind string
		want *Waiting
	}{
		{"no record", nil, "deleted", nil},
		{"no wait", &Record{}, "deleted", nil},
		{"same kind", &Record{Waiting: w}, "deleted", w},
		{"other kind", &Record{Waiting: w}, "stopped", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rec.waitingFor(tt.kind); got != tt.want {
				t.Fatalf("waitingFor(%s) = %v, want %v", tt.kind, got, tt.want)
			}
		})
	}
}
