package worker

import "sort"

// Diff returns the plan that turns have into want, each list sorted by key.
func Diff(have, want Objects) Plan {
	var p Plan
	for k, v := range want {
		old, ok := have[k]
		switch {
		case !ok:
			p.Create = append(p.Create, Change{Key: k, New: v})
		case old != v:
			p.Update = append(p.Update, Change{Key: k, Old: old, New: v})
		}
	}
	for k, v := range have {
		if _, ok := want[k]; !ok {
			p.Delete = append(p.Delete, Change{Key: k, Old: v})
		}
	}
	for _, l := range [][]Change{p.Create, p.Update, p.Delete} {
		sort.Slice(l, func(i, j int) bool { return l[i].Key < l[j].Key })
	}
	return p
}
