package worker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Verifier is a Target that can read back its own objects for a VM. It is
// an optional capability: a target without it cannot verify, and replay,
// reconcile and the periodic verification say so instead of checking it.
//
// Verify reads, without changing anything, the target's state of every
// object key of req.Have and req.Want (req.Unverified is empty) and
// reports it in a Readback. It must not report objects under other keys.
// An error means the state could not be read (target down): nothing is
// concluded from it.
//
// The runtime repairs what a Verify shows drifted with the same Apply as
// always: an object of Have that is missing or holds another value is
// passed to Apply in Request.Unverified (ours, may not exist), which Apply
// already makes exist with its value. So a Verifier is one read-only
// method; the repair needs no code of its own.
type Verifier interface {
	Verify(ctx context.Context, req Request) (Readback, error)
}

// Readback is what a Verify found for the keys of Have and Want.
type Readback struct {
	// Present are the objects found that are vmglue's (its ownership
	// marker, or the value it recorded), with the value found.
	Present Objects
	// Foreign are objects found under a key of Want that vmglue does not
	// own, with a description of what was found.
	Foreign Objects
	// Kept are objects of Have that were changed outside vmglue and that
	// the target will not repair (a certificate revoked by hand is not
	// vmglue's to re-issue), with what was found. They are reported.
	Kept Objects
}

// Drift kinds, the "kind" of a Finding.
const (
	DriftMissing  = "missing"  // wanted, not in the target
	DriftWrong    = "wrong"    // wanted, in the target with another value
	DriftUnwanted = "unwanted" // vmglue's, in the target, not wanted
	DriftForeign  = "foreign"  // wanted, but an object vmglue does not own is in the way
	DriftKept     = "kept"     // changed by hand, left so and reported (see Readback.Kept)
)

// Finding is one object that differs between what a worker wants for a VM
// and what its target holds.
type Finding struct {
	Kind  string `json:"kind"`
	Key   string `json:"key"`
	Want  string `json:"want,omitempty"`
	Found string `json:"found,omitempty"`
}

// String is the readable form: "missing A vm1.cloud.test. (want 10.0.0.1)".
func (f Finding) String() string {
	s := f.Kind + " " + f.Key
	switch {
	case f.Want != "" && f.Found != "":
		s += fmt.Sprintf(" (want %q, found %q)", f.Want, f.Found)
	case f.Want != "":
		s += fmt.Sprintf(" (want %q)", f.Want)
	case f.Found != "":
		s += fmt.Sprintf(" (found %q)", f.Found)
	}
	return s
}

// Compare returns the findings of a Readback against want, sorted by key.
// An object of Have not wanted and not found is no finding: it is gone, as
// wanted.
func Compare(want Objects, rb Readback) []Finding {
	var out []Finding
	for k, v := range want {
		if found, ok := rb.Kept[k]; ok {
			out = append(out, Finding{Kind: DriftKept, Key: k, Want: v, Found: found})
			continue
		}
		if found, ok := rb.Foreign[k]; ok {
			out = append(out, Finding{Kind: DriftForeign, Key: k, Want: v, Found: found})
			continue
		}
		found, ok := rb.Present[k]
		switch {
		case !ok:
			out = append(out, Finding{Kind: DriftMissing, Key: k, Want: v})
		case found != v:
			out = append(out, Finding{Kind: DriftWrong, Key: k, Want: v, Found: found})
		}
	}
	for k, found := range rb.Present {
		if _, ok := want[k]; !ok {
			out = append(out, Finding{Kind: DriftUnwanted, Key: k, Found: found})
		}
	}
	for k, found := range rb.Kept {
		if _, ok := want[k]; !ok {
			out = append(out, Finding{Kind: DriftKept, Key: k, Found: found})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// ErrDriftKept is wrapped by the permanent error of a verified converge
// that found objects changed by hand which the target does not repair
// (Readback.Kept): the event is dead-lettered with reason "drift", which
// reports them.
var ErrDriftKept = errors.New("changed outside vmglue, left as found")

// keptError reports the kept findings.
func keptError(fs []Finding) error {
	var s []string
	for _, f := range fs {
		if f.Kind == DriftKept {
			s = append(s, f.String())
		}
	}
	if len(s) == 0 {
		return nil
	}
	return Permanent(fmt.Errorf("%s: %w", strings.Join(s, "; "), ErrDriftKept))
}

// repairs returns the objects of have that the findings show missing or
// wrong: Apply gets them as Unverified, so it makes them exist again.
func repairs(have Objects, fs []Finding) Objects {
	var u Objects
	for _, f := range fs {
		if f.Kind != DriftMissing && f.Kind != DriftWrong {
			continue
		}
		if v, ok := have[f.Key]; ok {
			if u == nil {
				u = Objects{}
			}
			u[f.Key] = v
		}
	}
	return u
}
