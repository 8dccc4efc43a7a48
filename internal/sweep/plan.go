package sweep

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/delivery"
)

// plan decides, VM by VM, what one sweep does, and does it unless dry.
type plan struct {
	s       *Sweeper
	mode    Mode
	r       *Result
	missing map[string]*absence // by VM id, from VMGLUE_SWEEP
}

// present handles a VM the cloud listed, known being vmglue's snapshot
// (nil if none).
func (p *plan) present(ctx context.Context, vm, known *eventbus.VM) error {
	if _, ok := p.missing[vm.ID]; ok {
		delete(p.missing, vm.ID)
		if !p.mode.DryRun {
			if err := p.s.absences.clear(ctx, p.key(vm.ID)); err != nil {
				return err
			}
		}
	}
	what, detail := p.compare(vm, known)
	if what == "" {
		return nil
	}
	return p.publish(ctx, vm, what, detail)
}

// absent handles the known VMs the cloud did not list, in id order.
func (p *plan) absent(ctx context.Context, gone []*eventbus.VM) error {
	now := p.s.now().UTC().Truncate(time.Second)
	var due []*eventbus.VM
	var errs []error
	for _, vm := range gone {
		a := p.missing[vm.ID]
		if a == nil {
			a = &absence{Since: now}
			p.missing[vm.ID] = a
		}
		a.Sweeps++
		if a.Sweeps >= p.s.o.MissingSweeps {
			due = append(due, vm)
			continue
		}
		p.note(ActionMissing, vm, fmt.Sprintf("%d of %d sweeps", a.Sweeps, p.s.o.MissingSweeps))
		errs = append(errs, p.count(ctx, vm.ID))
	}
	if len(due) == 0 {
		return errors.Join(errs...)
	}
	if !p.mode.Force && !DeletionsAllowed(len(due), p.r.Known, p.s.o) {
		p.s.log.Warn().Int("deletions", len(due)).Int("known", p.r.Known).Float64("max_delete_share", p.s.o.MaxDeleteShare).
			Int("max_delete_floor", p.s.o.MaxDeleteFloor).
			Msgf("held back: %d of %d known VMs are gone from the cloud's answer; if the cloud really deleted them, run `vmglue sweep --cloud %s --force`", len(due), p.r.Known, p.s.cloud.Name())
		for _, vm := range due {
			p.r.HeldBack++
			p.note(ActionHeldBack, vm, fmt.Sprintf("missing from %d sweeps; %d deletions > max_delete_share %g of %d known VMs and > max_delete_floor %d",
				p.missing[vm.ID].Sweeps, len(due), p.s.o.MaxDeleteShare, p.r.Known, max(p.s.o.MaxDeleteFloor, 0)))
			errs = append(errs, p.count(ctx, vm.ID))
		}
		return errors.Join(errs...)
	}
	for _, vm := range due {
		if err := p.remove(ctx, vm); err != nil {
			if errors.Is(err, ErrPublish) {
				return errors.Join(append(errs, err)...)
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DeletionsAllowed says whether one sweep may delete n of the known VMs
// without --force: up to o.MaxDeleteFloor always (a small cloud's deletes),
// beyond it up to o.MaxDeleteShare of them (a big cloud's API answering an
// empty or truncated list deletes nothing). o holds the values, defaults
// applied.
func DeletionsAllowed(n, known int, o Options) bool {
	return n <= o.MaxDeleteFloor || float64(n) <= o.MaxDeleteShare*float64(known)
}

// remove deletes a VM missing from enough sweeps, after asking the cloud
// about it once more: listings are paged, and a VM can slip between pages.
func (p *plan) remove(ctx context.Context, known *eventbus.VM) error {
	a := p.missing[known.ID]
	vm, found, err := p.s.cloud.Lookup(ctx, known.ID)
	vm.Version.Seen = p.s.now().UnixNano()
	switch {
	case err != nil:
		p.note(ActionMissing, known, "lookup failed, deletion waits")
		return errors.Join(fmt.Errorf("sweep %s: look up missing vm %s: %w", p.s.cloud.Name(), known.ID, err), p.count(ctx, known.ID))
	case found && !vm.Deleted():
		// Listed after all: not missing.
		delete(p.missing, known.ID)
		if !p.mode.DryRun {
			if err := p.s.absences.clear(ctx, p.key(known.ID)); err != nil {
				return err
			}
		}
		if what, detail := p.compare(&vm, known); what != "" {
			return p.publish(ctx, &vm, what, detail)
		}
		return nil
	case !found:
		vm = gone(known, a.Since)
	}
	if err := p.publish(ctx, &vm, ActionDeleted, fmt.Sprintf("missing from %d sweeps since %s", a.Sweeps, a.Since.Format(time.RFC3339))); err != nil {
		return err
	}
	if p.mode.DryRun {
		return nil
	}
	return p.s.absences.clear(ctx, p.key(known.ID))
}

// count records the VM's absence (not in a dry run).
func (p *plan) count(ctx context.Context, id string) error {
	if p.mode.DryRun {
		return nil
	}
	return p.s.absences.store(ctx, p.key(id), p.missing[id])
}

// publish sends the VM's snapshot as a sweep event (not in a dry run) and
// counts it.
func (p *plan) publish(ctx context.Context, vm *eventbus.VM, what, detail string) error {
	if !p.mode.DryRun {
		ev, err := eventbus.NewEvent(*vm)
		if err != nil {
			return fmt.Errorf("sweep %s: vm %s: %w", p.s.cloud.Name(), vm.ID, err)
		}
		ev.Origin = eventbus.OriginSweep
		switch res := p.s.pub.Publish(ctx, &ev); res.Outcome {
		case delivery.Duplicate:
			p.r.Duplicates++
		case delivery.Spooled:
			p.r.Spooled++
		case delivery.Published:
		default:
			return fmt.Errorf("sweep %s: %w: vm %s: %w", p.s.cloud.Name(), ErrPublish, vm.ID, res.Err)
		}
	}
	switch what {
	case ActionNew:
		p.r.New++
	case ActionChanged:
		p.r.Changed++
	case ActionDeleted:
		p.r.Deleted++
	}
	p.note(what, vm, detail)
	return nil
}

func (p *plan) note(what string, vm *eventbus.VM, detail string) {
	if what == ActionMissing {
		p.r.Missing++
	}
	p.r.Actions = append(p.r.Actions, Action{What: what, VM: vm.ID, Name: vm.Name, Detail: detail})
}

func (p *plan) key(id string) string { return p.s.cloud.Name() + "." + id }

// compare says whether the cloud's snapshot vm is news to vmglue, whose
// snapshot is known: ActionNew (unknown), ActionChanged (newer, or as new
// with other content), or "" (the same, older, or known deleted). The time
// the cloud last polled the VM does not count (it changes all the time),
// nor when a source took the snapshot (Version.Seen). For a Projector
// cloud, a snapshot not older whose Comparable is the same is no news.
func (p *plan) compare(vm, known *eventbus.VM) (what, detail string) {
	if known == nil {
		return ActionNew, vm.Kind
	}
	if known.Deleted() { // terminal; a reused id needs the operator
		return "", ""
	}
	a, b := vm.Version, known.Version
	a.Observed, b.Observed, a.Seen, b.Seen = 0, 0, 0, 0
	c := a.Compare(b)
	proj, _ := p.s.cloud.(Projector)
	switch {
	case c < 0:
		return "", ""
	case proj != nil:
		x, y := proj.Comparable(*vm), proj.Comparable(*known)
		if sameState(&x, &y) {
			return "", ""
		}
	case c == 0 && sameState(vm, known):
		return "", ""
	}
	if vm.Kind != known.Kind {
		return ActionChanged, known.Kind + " -> " + vm.Kind
	}
	return ActionChanged, vm.Kind + ", other content"
}

// sameState compares two snapshots but for the time of the last poll (and
// Seen, which the Digest leaves out).
func sameState(a, b *eventbus.VM) bool {
	x, y := *a, *b
	x.Times.Observed, y.Times.Observed = nil, nil
	x.Version.Observed, y.Version.Observed = 0, 0
	return x.Digest() == y.Digest()
}

// gone is the deleted snapshot of a VM the cloud no longer knows at all:
// vmglue's last snapshot, deleted, observed when the sweeps first missed it
// (so that every sweeper makes the same event).
func gone(known *eventbus.VM, since time.Time) eventbus.VM {
	vm := *known
	vm.Kind = eventbus.KindDeleted
	switch vm.CloudType {
	case "opennebula":
		vm.State, vm.LCMState = "DONE", "LCM_INIT"
	default:
		vm.State, vm.LCMState = "deleted", ""
	}
	t := since.UTC()
	vm.Times.Observed = &t
	vm.Version = eventbus.Version{Seq: known.Version.Seq, Changed: known.Version.Changed, Observed: t.UnixNano()}
	return vm
}

// compareIDs orders numeric ids as numbers, others as text after them.
func compareIDs(a, b string) int {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	switch {
	case errA == nil && errB == nil:
		return cmp.Compare(x, y)
	case errA == nil:
		return -1
	case errB == nil:
		return 1
	}
	return strings.Compare(a, b)
}
