package dns

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"

	mdns "github.com/miekg/dns"

	"github.com/vmglue/vmglue/internal/worker"
)

type ownState int

const (
	stateAbsent  ownState = iota // no record at the name
	stateOwned                   // our proof record (TXT marker, or our PTR) is there
	stateForeign                 // something else is there
)

// nameChange is what one Apply does at one owner name.
type nameChange struct {
	name, zone string
	reverse    bool              // a PTR name; else a forward name (A, AAAA, TXT)
	have, want map[string]string // record type → object value
	state      ownState
	cur        string // the proof value in DNS when owned
	full       bool   // replace every managed RRset (the state came from a query)
	found      string // what a query found, for a conflict message
	// targetOwned (reverse names) says the forward name the wanted PTR
	// points at was ours before this Apply (registry or marker): only
	// then is a PTR found with that value taken for one vmglue wrote.
	targetOwned bool
	// verified says have's proof record is known to exist (recorded by a
	// successful Apply), not just pending from one that failed or crashed.
	verified bool
}

func (n *nameChange) types() []string {
	if n.reverse {
		return []string{typePTR}
	}
	return forwardTypes
}

func (n *nameChange) proof() string {
	if n.reverse {
		return typePTR
	}
	return typeTXT
}

// Apply sends, per zone, one UPDATE with the difference between have and
// want (batched with other VMs' updates), guarded by prerequisites so that
// it never changes a name vmglue does not own. See the package doc.
func (t *Target) Apply(ctx context.Context, req worker.Request) (worker.Objects, error) {
	vm, have, want := req.VM, req.Have, req.Want
	result := req.Result()
	unverified := req.Unverified // ours, but an interrupted Apply may not have made them
	if worker.Diff(have, want).Empty() && len(unverified) == 0 {
		return result, nil
	}
	zones, forgotten, err := t.group(have, want, unverified)
	if err != nil {
		return result, err
	}
	for _, k := range forgotten {
		delete(result, k)
	}
	// Forward names first: a PTR is only written once the name it points at
	// is ours, so a conflict on the forward name leaves no reverse record.
	forward, reverse := map[string][]*nameChange{}, map[string][]*nameChange{}
	for zone, list := range zones {
		if list[0].reverse {
			reverse[zone] = list
		} else {
			forward[zone] = list
		}
	}
	errs := t.applyZones(ctx, forward, result)
	if len(errs) == 0 {
		markTargetsOwned(have, unverified, forward, reverse)
		errs = t.applyZones(ctx, reverse, result)
	}
	if err := joinErrors(errs); err != nil {
		return result, fmt.Errorf("apply dns for vm %s: %w", vm.Key(), err)
	}
	t.log.Debug().Str("vm", vm.Key()).Int("zones", len(zones)).Int("records", len(result)).Msg("dns records converged")
	return result, nil
}

// markTargetsOwned sets targetOwned on the reverse names whose wanted PTR
// points at a forward name that was ours before this Apply: recorded (its
// TXT marker verified in have) or found with our marker. A forward name
// created just now was not ours before, so a PTR already pointing at it is
// someone else's (an operator's, an old nsupdate hook's): a conflict unless
// adopt_existing.
func markTargetsOwned(have, unverified worker.Objects, forward, reverse map[string][]*nameChange) {
	owned := map[string]bool{}
	for k, v := range have {
		if typ, name, _ := strings.Cut(k, " "); typ == typeTXT && unverified[k] != v {
			owned[name] = true
		}
	}
	for _, list := range forward {
		for _, n := range list {
			if n.state == stateOwned {
				owned[n.name] = true
			}
		}
	}
	for _, list := range reverse {
		for _, n := range list {
			target := n.want[typePTR]
			if target == "" { // a delete: the name it pointed at
				target = n.have[typePTR]
			}
			n.targetOwned = owned[target]
		}
	}
}

// applyZones applies zones concurrently and records what succeeded in result.
func (t *Target) applyZones(ctx context.Context, zones map[string][]*nameChange, result worker.Objects) []error {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	for zone, list := range zones {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := t.applyZone(ctx, zone, list)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				for _, n := range list {
					if n.state == stateForeign && !n.verified {
						// Pending from an interrupted Apply, but the
						// server shows someone else's records: not ours.
						for _, typ := range n.types() {
							delete(result, typ+" "+n.name)
						}
					}
				}
				return
			}
			for _, n := range list {
				for _, typ := range n.types() {
					delete(result, typ+" "+n.name)
					if v, ok := n.want[typ]; ok {
						result[typ+" "+n.name] = v
					}
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

// joinErrors joins zone errors. The result is permanent only when every
// error is: a transient failure in one zone is worth a retry.
func joinErrors(errs []error) error {
	if len(errs) <= 1 {
		return errors.Join(errs...)
	}
	all := true
	for _, e := range errs {
		all = all && worker.IsPermanent(e)
	}
	if all {
		return errors.Join(errs...)
	}
	plain := make([]error, len(errs))
	for i, e := range errs {
		plain[i] = e
		if worker.IsPermanent(e) {
			plain[i] = errors.New(e.Error()) // keep the text, drop the permanent mark
		}
	}
	return errors.Join(plain...)
}

// group splits the keys of have and want by owner name and zone, keeping
// only names where something differs or that hold an unverified object
// (those are rewritten in full: verified by the prerequisite, or created).
func (t *Target) group(have, want, unverified worker.Objects) (map[string][]*nameChange, []string, error) {
	names := map[string]*nameChange{}
	var forgotten []string
	add := func(objs worker.Objects, side func(*nameChange) map[string]string, mustZone bool) error {
		for k, v := range objs {
			typ, name, ok := strings.Cut(k, " ")
			if !ok {
				return worker.Permanent(fmt.Errorf("object key %q is not \"TYPE name\"", k))
			}
			n := names[name]
			if n == nil {
				n = &nameChange{name: name, reverse: typ == typePTR, have: map[string]string{}, want: map[string]string{}}
				if n.reverse {
					n.zone = zoneOf(name, t.reverse)
				} else {
					n.zone = zoneOf(name, t.forward)
				}
				names[name] = n
			}
			if n.zone == "" {
				if mustZone {
					return worker.Permanent(fmt.Errorf("record %q is in no configured zone", k))
				}
				t.log.Warn().Str("record", k).Msg("record in no configured zone any more: forgotten, left alone")
				forgotten = append(forgotten, k)
				continue
			}
			side(n)[typ] = v
		}
		return nil
	}
	if err := add(have, func(n *nameChange) map[string]string { return n.have }, false); err != nil {
		return nil, nil, err
	}
	if err := add(want, func(n *nameChange) map[string]string { return n.want }, true); err != nil {
		return nil, nil, err
	}
	zones := map[string][]*nameChange{}
	for _, n := range names {
		for _, typ := range n.types() {
			if _, ok := unverified[typ+" "+n.name]; ok {
				n.full = true
			}
		}
		if n.zone == "" || (maps.Equal(n.have, n.want) && !n.full) {
			continue
		}
		if v, ok := n.have[n.proof()]; ok && unverified[n.proof()+" "+n.name] != v {
			// Recorded by a successful Apply. A pending proof proves
			// nothing: the prerequisite "not in use" or a query decides.
			n.state, n.cur, n.verified = stateOwned, v, true
		}
		zones[n.zone] = append(zones[n.zone], n)
	}
	for _, l := range zones {
		sort.Slice(l, func(i, j int) bool { return l[i].name < l[j].name })
	}
	return zones, forgotten, nil
}

// applyZone sends the zone's changes. A failed prerequisite means the names
// are not in the state have claims: it asks the server who holds each name,
// rebuilds the update from that, and sends it once more.
func (t *Target) applyZone(ctx context.Context, zone string, list []*nameChange) error {
	b := t.batcher(zone)
	for _, n := range list {
		// To delete what an interrupted Apply may have made: only the
		// server knows whether it is there, and whether it is ours.
		if n.full && !n.verified && len(n.want) == 0 {
			if err := t.resolve(ctx, zone, n); err != nil {
				return err
			}
		}
	}
	p, err := t.buildPart(list)
	if p == nil || err != nil {
		return err
	}
	err = b.submit(ctx, p)
	var pe *prereqError
	if !errors.As(err, &pe) {
		return err
	}
	for _, n := range list {
		if err := t.resolve(ctx, zone, n); err != nil {
			return err
		}
	}
	if p, err = t.buildPart(list); p == nil || err != nil {
		return err
	}
	p.alone = true
	if err = b.submit(ctx, p); errors.As(err, &pe) {
		t.metrics.conflict.Inc()
		return worker.Permanent(fmt.Errorf("zone %s: names %s changed by someone else while applying: %w", zone, namesOf(list), worker.ErrConflict))
	}
	return err
}

func namesOf(list []*nameChange) string {
	s := make([]string, len(list))
	for i, n := range list {
		s[i] = n.name
	}
	return strings.Join(s, ", ")
}

// owns reports whether a proof record found with value v is ours. A
// forward name's proof is our marker, which holds the VM's key: found in
// have or want, it is ours. A reverse name's PTR value is only a host name
// that anyone may write: it is ours if we recorded it, or if the name it
// points at was ours before this Apply (targetOwned).
func (n *nameChange) owns(v string) bool {
	if !n.reverse {
		return v == n.have[typeTXT] || v == n.want[typeTXT]
	}
	return (v == n.have[typePTR] && n.verified) || ((v == n.have[typePTR] || v == n.want[typePTR]) && n.targetOwned)
}

// resolve asks the server what holds n's name and sets n.state.
func (t *Target) resolve(ctx context.Context, zone string, n *nameChange) error {
	qtype := mdns.StringToType[n.proof()]
	rcode, vals, err := t.lookup(ctx, zone, n.name, qtype)
	if err != nil {
		return err
	}
	proof := n.proof()
	switch {
	case rcode == mdns.RcodeNameError:
		n.state = stateAbsent
	case len(vals) == 1 && vals[0] != "" && n.owns(vals[0]):
		n.state, n.cur, n.full = stateOwned, vals[0], true
	default:
		n.state = stateForeign
		n.found = "records without a vmglue owner marker"
		if len(vals) > 0 {
			n.found = fmt.Sprintf("%s %q", proof, strings.Join(vals, " "))
		}
	}
	return nil
}
