package worker

import (
	"maps"
	"testing"
)

// settle decides what a failed Apply leaves applied and what stays
// pending (ours, unverified).
func TestSettle(t *testing.T) {
	tests := []struct {
		name                       string
		rec                        *Record
		unverified, pending, want  Objects
		got                        Objects
		wantApplied, wantStillPend Objects
	}{
		{
			name:    "target down: nothing new applied, the intent stays pending",
			pending: Objects{"A x": "1"}, got: Objects{},
			wantApplied: Objects{}, wantStillPend: Objects{"A x": "1"},
		},
		{
			name:       "target down again: the echo of the unverified object is no proof",
			rec:        &Record{Pending: Objects{"A x": "1"}},
			unverified: Objects{"A x": "1"}, pending: Objects{"A x": "1"}, got: Objects{"A x": "1"},
			wantApplied: Objects{}, wantStillPend: Objects{"A x": "1"},
		},
		{
			name:       "an unverified update echoed: the old applied value is kept",
			rec:        &Record{Applied: Objects{"A x": "1"}, Pending: Objects{"A x": "2"}},
			unverified: Objects{"A x": "2"}, pending: Objects{"A x": "2"}, got: Objects{"A x": "2"},
			wantApplied: Objects{"A x": "1"}, wantStillPend: Objects{"A x": "2"},
		},
		{
			name:    "one zone done, one failed: the done object is confirmed",
			rec:     &Record{Applied: Objects{"A x": "1"}},
			pending: Objects{"A x": "1", "PTR y": "x"}, got: Objects{"A x": "1"},
			wantApplied: Objects{"A x": "1"}, wantStillPend: Objects{"PTR y": "x"},
		},
		{
			name:       "an unverified object deleted as wanted is settled",
			rec:        &Record{Pending: Objects{"A x": "1"}},
			unverified: Objects{"A x": "1"}, pending: Objects{"A x": "1"}, want: Objects{}, got: Objects{},
			wantApplied: Objects{},
		},
		{
			name:       "an unverified object to delete, echoed: still pending",
			rec:        &Record{Pending: Objects{"A x": "1"}},
			unverified: Objects{"A x": "1"}, pending: Objects{"A x": "1"}, want: Objects{}, got: Objects{"A x": "1"},
			wantApplied: Objects{}, wantStillPend: Objects{"A x": "1"},
		},
		{
			name:    "a new object the target reports in place is confirmed",
			pending: Objects{"A x": "1"}, got: Objects{"A x": "1"},
			wantApplied: Objects{"A x": "1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == nil { // most cases: every intent is wanted
				want = tt.pending
			}
			applied, still := settle(tt.rec, tt.unverified, tt.pending, want, tt.got)
			if !maps.Equal(applied, tt.wantApplied) || !maps.Equal(still, tt.wantStillPend) {
				t.Fatalf("settle = applied %v, pending %v; want %v, %v", applied, still, tt.wantApplied, tt.wantStillPend)
			}
		})
	}
}

// TestIntentKnown: the pending write before an Apply is skipped only when
// the record already claims every object the Apply is about to touch.
func TestIntentKnown(t *testing.T) {
	applied := Objects{"A x": "1", "PTR y": "x"}
	tests := []struct {
		name    string
		rec     *Record
		pending Objects
		want    bool
	}{
		{"no record yet: the create's intent is new", nil, Objects{"A x": "1"}, false},
		{"no record, nothing to do", nil, Objects{}, false},
		{"a delete: nothing pending", &Record{Applied: applied}, Objects{}, true},
		{"a partial delete: what stays is applied", &Record{Applied: applied}, Objects{"A x": "1"}, true},
		{"an update: a new value", &Record{Applied: applied}, Objects{"A x": "2"}, false},
		{"an addition", &Record{Applied: applied}, Objects{"A x": "1", "TXT x": "web"}, false},
		{"an earlier apply left objects pending", &Record{Applied: applied, Pending: Objects{"A x": "1"}}, Objects{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := intentKnown(tt.rec, tt.pending); got != tt.want {
				t.Fatalf("intentKnown = %v, want %v", got, tt.want)
			}
		})
	}
}
