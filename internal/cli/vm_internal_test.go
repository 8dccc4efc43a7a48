package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/internal/worker"
)

// A record's teardown wait is one line of `vmglue vm`.
func TestPrintRecordWaiting(t *testing.T) {
	since := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		rec  *worker.Record
		want string
	}{
		{"waiting", &worker.Record{Applied: worker.Objects{"A web42.": "10.0.0.42"},
			Waiting: &worker.Waiting{Kind: "deleted", Since: since, For: []string{"lb", "monitor"}}},
			"    deleted: waiting since 2026-05-01T10:00:00Z for lb, monitor to finish first (runtime.teardown_order)\n"},
		{"not waiting", &worker.Record{Applied: worker.Objects{}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			printRecord(&b, "dns", tt.rec)
			got := ""
			for _, l := range strings.SplitAfter(b.String(), "\n") {
				if strings.Contains(l, "waiting") {
					got += l
				}
			}
			if got != tt.want {
				t.Fatalf("waiting line %q, want %q\nwhole:\n%s", got, tt.want, b.String())
			}
		})
	}
}
