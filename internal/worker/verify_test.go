package worker

import (
	"errors"
	"maps"
	"slices"
	"testing"
)

func TestCompare(t *testing.T) {
	tests := []struct {
		name string
		want Objects
		rb   Readback
		out  []Finding
	}{
		{name: "in step", want: Objects{"A x": "1"}, rb: Readback{Present: Objects{"A x": "1"}}},
		{name: "missing", want: Objects{"A x": "1"}, rb: Readback{},
			out: []Finding{{Kind: DriftMissing, Key: "A x", Want: "1"}}},
		{name: "wrong", want: Objects{"A x": "1"}, rb: Readback{Present: Objects{"A x": "2"}},
			out: []Finding{{Kind: DriftWrong, Key: "A x", Want: "1", Found: "2"}}},
		{name: "unwanted", want: Objects{}, rb: Readback{Present: Objects{"A x": "1"}},
			out: []Finding{{Kind: DriftUnwanted, Key: "A x", Found: "1"}}},
		{name: "foreign", want: Objects{"A x": "1"}, rb: Readback{Foreign: Objects{"A x": "someone's"}},
			out: []Finding{{Kind: DriftForeign, Key: "A x", Want: "1", Found: "someone's"}}},
		{name: "kept", want: Objects{"cert c": ""}, rb: Readback{Kept: Objects{"cert c": "revoked"}},
			out: []Finding{{Kind: DriftKept, Key: "cert c", Found: "revoked"}}},
		{name: "sorted by key", want: Objects{"b": "1", "a": "1"}, rb: Readback{},
			out: []Finding{{Kind: DriftMissing, Key: "a", Want: "1"}, {Kind: DriftMissing, Key: "b", Want: "1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Compare(tt.want, tt.rb); !slices.Equal(got, tt.out) {
				t.Errorf("Compare = %v, want %v", got, tt.out)
			}
		})
	}
}

// Only objects of have that are missing or wrong are repaired (passed to
// Apply as Unverified, with have's value); a foreign one never is.
func TestRepairsAndKept(t *testing.T) {
	have := Objects{"A x": "1", "TXT x": "m", "PTR y": "x", "cert c": ""}
	fs := []Finding{
		{Kind: DriftMissing, Key: "A x", Want: "1"},
		{Kind: DriftWrong, Key: "TXT x", Want: "m", Found: "other"},
		{Kind: DriftMissing, Key: "AAAA x", Want: "::1"}, // not recorded: the plan creates it
		{Kind: DriftForeign, Key: "PTR y", Want: "x", Found: "PTR z"},
		{Kind: DriftKept, Key: "cert c", Found: "revoked"},
	}
	if got, want := repairs(have, fs), (Objects{"A x": "1", "TXT x": "m"}); !maps.Equal(got, want) {
		t.Errorf("repairs = %v, want %v", got, want)
	}
	err := keptError(fs)
	if !IsPermanent(err) || !errors.Is(err, ErrDriftKept) {
		t.Fatalf("keptError = %v, want a permanent ErrDriftKept", err)
	}
	if keptError(fs[:4]) != nil {
		t.Error("keptError without kept findings is not nil")
	}
}
