package worker

import (
	"context"
	"fmt"
)

// Surveyor is a Verifier that can also list every object in its target
// that carries vmglue's ownership marker of this installation, whichever VM
// it names. After each pass of the periodic verification the runtime
// reports (at warn level, and as a finding of kind DriftStray) every
// marked object that the registry does not hold for the VM it names: left
// behind by a lost registry record or by hand. They are never removed: the
// registry, not the marker alone, says what vmglue may delete.
type Surveyor interface {
	Survey(ctx context.Context) ([]Marked, error)
}

// Marked is an object carrying vmglue's marker: the VM it names
// ("<cloud>.<vmid>"), its object key and what was found.
type Marked struct {
	VM    string
	Key   string
	Found string
}

// DriftStray is the kind of a finding of a marked object no VM's record
// holds (see Surveyor).
const DriftStray = "stray"

// survey reports the marked objects of a Surveyor target that no record
// holds: recs is the registry as the pass read it; a VM converged since
// is read again before its object is reported. It returns how many.
func (r *Runner) survey(ctx context.Context, recs map[string]*Record) (int, error) {
	s, ok := r.t.(Surveyor)
	if !ok {
		return 0, nil
	}
	marked, err := s.Survey(ctx)
	if err != nil {
		return 0, fmt.Errorf("survey: %w", err)
	}
	n := 0
	for _, m := range marked {
		if _, held := recs[m.VM].Have()[m.Key]; held {
			continue
		}
		rec, _, err := r.reg.Get(ctx, m.VM)
		if err != nil {
			return n, err
		}
		if _, held := rec.Have()[m.Key]; held {
			continue
		}
		n++
		r.m.driftFound.WithLabelValues(DriftStray).Inc()
		r.log.Warn().Str("drift", DriftStray).Str("vm", m.VM).Str("object", m.Key).Str("found", m.Found).
			Msg("object marked as vmglue's, but no record of the vm holds it: left alone")
	}
	return n, nil
}
