package sweep_test

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/vmglue/vmglue/internal/sweep"
)

// TestSmallCloudDeletes sweeps clouds of a few known VMs of which some are
// deleted: max_delete_floor deletions always go, beyond them
// max_delete_share holds back, and an empty answer of a cloud bigger than
// the floor deletes nothing.
func TestSmallCloudDeletes(t *testing.T) {
	for _, tc := range []struct {
		name          string
		known, gone   int // of the 6 live corpus VMs
		o             sweep.Options
		deleted, held int
	}{
		{"one of one", 1, 1, sweep.Options{}, 1, 0},
		{"one of two", 2, 1, sweep.Options{}, 1, 0},
		{"one of three", 3, 1, sweep.Options{}, 1, 0},
		{"all three, at the floor", 3, 3, sweep.Options{}, 3, 0},
		{"three of six, at the floor", 6, 3, sweep.Options{}, 3, 0},
		{"four of six, beyond floor and share", 6, 4, sweep.Options{}, 0, 4},
		{"empty answer of six", 6, 6, sweep.Options{}, 0, 6},
		{"four of six, share 0.75", 6, 4, sweep.Options{MaxDeleteShare: 0.75}, 4, 0},
		{"four of six, floor 4", 6, 4, sweep.Options{MaxDeleteFloor: 4}, 4, 0},
		{"one of two, no floor", 2, 1, sweep.Options{MaxDeleteFloor: -1}, 0, 1},
		{"two of six, floor 1", 6, 2, sweep.Options{MaxDeleteFloor: 1}, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.loadLive()
			for _, id := range liveIDs[tc.known:] { // never known
				removeVM(t, e, id)
			}
			r, err := e.run(e.sweeper(tc.o, nil), sweep.Mode{})
			if err != nil || r.New != tc.known {
				t.Fatalf("first sweep: %+v %v; want %d new", r, err, tc.known)
			}
			for _, id := range liveIDs[:tc.gone] {
				removeVM(t, e, id)
			}
			for i := range sweep.DefaultMissingSweeps {
				if r, err = e.run(e.sweeper(tc.o, nil), sweep.Mode{}); err != nil {
					t.Fatalf("sweep %d: %v", i+2, err)
				}
			}
			if r.Known != tc.known || r.Deleted != tc.deleted || r.HeldBack != tc.held {
				t.Fatalf("sweep %d: known %d, deleted %d, held back %d; want %d, %d, %d (%+v)", sweep.DefaultMissingSweeps+1,
					r.Known, r.Deleted, r.HeldBack, tc.known, tc.deleted, tc.held, r.Actions)
			}
		})
	}
}

func removeVM(t *testing.T, e *env, id string) {
	t.Helper()
	n, err := strconv.Atoi(id)
	if err != nil {
		t.Fatal(err)
	}
	e.one.RemoveVM(n)
}

// TestDeletionsAllowed: the rule of max_delete_floor and max_delete_share
// (defaults 3 and 0.25) at the sizes no fixture holds.
func TestDeletionsAllowed(t *testing.T) {
	def := sweep.Options{MaxDeleteShare: sweep.DefaultMaxDeleteShare, MaxDeleteFloor: sweep.DefaultMaxDeleteFloor}
	noFloor := sweep.Options{MaxDeleteShare: sweep.DefaultMaxDeleteShare, MaxDeleteFloor: -1}
	for _, tc := range []struct {
		n, known int
		o        sweep.Options
		want     bool
	}{
		{1, 1, def, true},
		{3, 3, def, true},
		{4, 4, def, false},
		{3, 12, def, true},
		{4, 12, def, false},
		{4, 16, def, true},
		{2500, 10000, def, true},
		{2501, 10000, def, false},
		{10000, 10000, def, false}, // a big cloud's API answering an empty list
		{1, 3, noFloor, false},
		{1, 4, noFloor, true},
		{0, 0, def, true},
	} {
		t.Run(fmt.Sprintf("%d of %d floor %d", tc.n, tc.known, tc.o.MaxDeleteFloor), func(t *testing.T) {
			if got := sweep.DeletionsAllowed(tc.n, tc.known, tc.o); got != tc.want {
				t.Fatalf("DeletionsAllowed(%d, %d, %+v) = %v, want %v", tc.n, tc.known, tc.o, got, tc.want)
			}
		})
	}
}
