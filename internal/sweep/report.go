package sweep

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Summary is the result as one line, e.g. "sweep one: listed 120, knew 118:
// 1 new, 1 changed, 0 deleted; 1 missing, 0 held back (0.41s)".
func (r *Result) Summary() string {
	verb := ""
	if r.DryRun {
		verb = " (dry run: would publish)"
	}
	s := fmt.Sprintf("sweep %s: listed %d, knew %d%s: %d new, %d changed, %d deleted; %d missing, %d held back (%s)",
		r.Cloud, r.Listed, r.Known, verb, r.New, r.Changed, r.Deleted, r.Missing, r.HeldBack, r.Duration.Round(time.Millisecond))
	if r.Duplicates > 0 {
		s += fmt.Sprintf("; %d already stored", r.Duplicates)
	}
	return s
}

// Write prints the summary line and one line per action (in a dry run, the
// plan), as `vmglue sweep` shows them.
func (r *Result) Write(w io.Writer) error {
	if _, err := fmt.Fprintln(w, r.Summary()); err != nil {
		return err
	}
	for _, a := range r.Actions {
		if _, err := fmt.Fprintf(w, "  %-9s %s.%s %s (%s)\n", a.What, r.Cloud, a.VM, a.Name, a.Detail); err != nil {
			return err
		}
	}
	return nil
}

// jsonResult is the --json form of a Result.
type jsonResult struct {
	Cloud      string   `json:"cloud"`
	DryRun     bool     `json:"dry_run"`
	Error      string   `json:"error,omitempty"`
	Listed     int      `json:"listed"`
	Known      int      `json:"known"`
	New        int      `json:"new"`
	Changed    int      `json:"changed"`
	Deleted    int      `json:"deleted"`
	Duplicates int      `json:"duplicates"`
	Missing    int      `json:"missing"`
	HeldBack   int      `json:"held_back"`
	Seconds    float64  `json:"seconds"`
	Actions    []Action `json:"actions"`
}

// WriteJSON prints the result (and err, if the sweep failed) as one JSON line.
func (r *Result) WriteJSON(w io.Writer, err error) error {
	j := jsonResult{Cloud: r.Cloud, DryRun: r.DryRun, Listed: r.Listed, Known: r.Known, New: r.New, Changed: r.Changed,
		Deleted: r.Deleted, Duplicates: r.Duplicates, Missing: r.Missing, HeldBack: r.HeldBack, Seconds: r.Duration.Seconds(), Actions: r.Actions}
	if j.Actions == nil {
		j.Actions = []Action{}
	}
	if err != nil {
		j.Error = err.Error()
	}
	b, mErr := json.Marshal(j)
	if mErr != nil {
		return mErr
	}
	_, wErr := fmt.Fprintf(w, "%s\n", b)
	return wErr
}
