package sweep

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/delivery"
)

// Cloud is what a sweep needs of a cloud's API.
type Cloud interface {
	// Name is the cloud's name in vmglue's subjects and keys ("one").
	Name() string
	// List returns every VM the cloud has now, deleted ones left out. An
	// error means the answer is not complete: the sweep concludes nothing.
	List(ctx context.Context) ([]eventbus.VM, error)
	// Lookup returns one VM by id (found false: the cloud does not know
	// the id at all). A deleted VM the cloud still knows comes back deleted.
	Lookup(ctx context.Context, id string) (vm eventbus.VM, found bool, err error)
}

// Scoped is a Cloud whose credentials may see only part of the cloud (an
// OpenStack project member's): the sweep counts, misses and deletes only
// the known VMs it covers, and concludes nothing about the others.
type Scoped interface {
	// Covers says whether the last List spoke for the VM.
	Covers(vm *eventbus.VM) bool
}

// Projector is a Cloud whose listing shows less of a VM than the
// snapshots of its push source hold (Nova's API beside the Nova bridge):
// the sweep compares both through Comparable, and a listing newer than
// vmglue's snapshot only by its version is no news.
type Projector interface {
	Comparable(vm eventbus.VM) eventbus.VM
}

// Publisher delivers one event: the shared delivery of the sources (a
// resident *delivery.Publisher, which spools while NATS is down: a
// listener's sweep) or JetStreamPublisher.
type Publisher interface {
	Publish(ctx context.Context, ev *eventbus.Event) delivery.Result
}

// JetStreamPublisher publishes straight to the event stream, with the event
// id as Nats-Msg-Id, and spools nothing: serve and `vmglue sweep` use it,
// since a sweep that cannot publish fails and the next one finds the same
// difference again.
type JetStreamPublisher struct{ JS jetstream.JetStream }

// Publish implements Publisher: Published, Duplicate, or Lost with the error.
func (p JetStreamPublisher) Publish(ctx context.Context, ev *eventbus.Event) delivery.Result {
	res, err := eventbus.Publish(ctx, p.JS, ev)
	switch {
	case err != nil:
		return delivery.Result{Outcome: delivery.Lost, Err: err}
	case res.Duplicate:
		return delivery.Result{Outcome: delivery.Duplicate, Sequence: res.Sequence}
	}
	return delivery.Result{Outcome: delivery.Published, Sequence: res.Sequence}
}

// Options tune the deletion rules. Zero values take the defaults.
type Options struct {
	// MissingSweeps is how many consecutive successful sweeps a known VM
	// must be missing from before it is deleted (default 2).
	MissingSweeps int
	// MaxDeleteShare is the largest share of the cloud's known VMs one
	// sweep deletes (default 0.25); more are held back unless forced.
	MaxDeleteShare float64
	// MaxDeleteFloor is how many deletions one sweep always allows,
	// whatever the share (default 3; negative: none, the share alone), so
	// that a small cloud's deletes happen: one deletion of 3 known VMs is
	// more than 0.25 of them.
	MaxDeleteFloor int
}

// Defaults of Options.
const (
	DefaultMissingSweeps  = 2
	DefaultMaxDeleteShare = 0.25
	DefaultMaxDeleteFloor = 3
)

// Mode is how one sweep runs.
type Mode struct {
	// Force deletes beyond MaxDeleteShare and MaxDeleteFloor
	// (MissingSweeps still applies).
	Force bool
	// DryRun computes the plan and changes nothing: no event, no count.
	DryRun bool
}

// Sweeper sweeps one cloud. Its sweeps never overlap; it is safe for
// concurrent use (the periodic sweep and a listener's reconnect).
type Sweeper struct {
	cloud    Cloud
	vms      jetstream.KeyValue
	absences absences
	pub      Publisher
	o        Options
	m        *Metrics
	log      zerolog.Logger
	mu       sync.Mutex
	now      func() time.Time
}

// New prepares a Sweeper of cloud. js opens the provisioned buckets; pub
// publishes the events; m may be nil.
func New(ctx context.Context, cloud Cloud, js jetstream.JetStream, pub Publisher, o Options, m *Metrics, log zerolog.Logger) (*Sweeper, error) {
	if !eventbus.ValidToken(cloud.Name()) {
		return nil, fmt.Errorf("sweep: cloud name %q: use letters, digits, '-' and '_'", cloud.Name())
	}
	if o.MissingSweeps <= 0 {
		o.MissingSweeps = DefaultMissingSweeps
	}
	if o.MaxDeleteShare <= 0 {
		o.MaxDeleteShare = DefaultMaxDeleteShare
	}
	if o.MaxDeleteFloor == 0 {
		o.MaxDeleteFloor = DefaultMaxDeleteFloor
	}
	vms, err := js.KeyValue(ctx, eventbus.BucketVMs)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", eventbus.BucketVMs, err)
	}
	abs, err := js.KeyValue(ctx, eventbus.BucketSweep)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w (start this version's `vmglue serve` once to provision it)", eventbus.BucketSweep, err)
	}
	return &Sweeper{cloud: cloud, vms: vms, absences: absences{abs}, pub: pub, o: o, m: m,
		log: log.With().Str("cloud", cloud.Name()).Str("component", "sweep").Logger(), now: time.Now}, nil
}

// Cloud is the name of the swept cloud.
func (s *Sweeper) Cloud() string { return s.cloud.Name() }

// Sweep runs one sweep with the configured rules: a ZeroMQ listener calls
// it on start and after every reconnect, serve every interval.
func (s *Sweeper) Sweep(ctx context.Context) (Result, error) { return s.Run(ctx, Mode{}) }

// Run runs one sweep in the given mode (see the package documentation).
// An error of the cloud's API changes nothing. The Result says what was
// found and done, also when an error stopped the sweep half way.
func (s *Sweeper) Run(ctx context.Context, mode Mode) (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := s.now()
	r := Result{Cloud: s.cloud.Name(), DryRun: mode.DryRun}
	err := s.run(ctx, mode, &r)
	r.Duration = s.now().Sub(start)
	s.m.observe(&r, err)
	ev := s.log.Info()
	if err != nil {
		ev = s.log.Error().Err(err)
	}
	ev.Int("listed", r.Listed).Int("known", r.Known).Int("new", r.New).Int("changed", r.Changed).
		Int("deleted", r.Deleted).Int("missing", r.Missing).Int("held_back", r.HeldBack).
		Bool("dry_run", mode.DryRun).Dur("duration", r.Duration).Msg("sweep")
	return r, err
}

func (s *Sweeper) run(ctx context.Context, mode Mode, r *Result) error {
	name := s.cloud.Name()
	listed, err := s.cloud.List(ctx)
	if err != nil {
		return fmt.Errorf("sweep %s: %w", name, err)
	}
	r.Listed = len(listed)
	at := s.now().UnixNano() // when vmglue took these snapshots
	for i := range listed {
		listed[i].Version.Seen = at
	}
	known, err := knownVMs(ctx, s.vms, name)
	if err != nil {
		return fmt.Errorf("sweep %s: %w", name, err)
	}
	missing, err := s.absences.load(ctx, name)
	if err != nil {
		return fmt.Errorf("sweep %s: %w", name, err)
	}
	p := plan{s: s, mode: mode, r: r, missing: missing}
	seen := make(map[string]bool, len(listed))
	for i := range listed {
		vm := &listed[i]
		seen[vm.ID] = true
		if err := p.present(ctx, vm, known[vm.ID]); err != nil {
			return err
		}
	}
	var gone []*eventbus.VM
	scoped, _ := s.cloud.(Scoped)
	for id, vm := range known {
		if vm.Deleted() || scoped != nil && !seen[id] && !scoped.Covers(vm) {
			continue
		}
		r.Known++
		if !seen[id] {
			gone = append(gone, vm)
		}
	}
	slices.SortFunc(gone, func(a, b *eventbus.VM) int { return compareIDs(a.ID, b.ID) })
	if err := p.absent(ctx, gone); err != nil {
		return err
	}
	// Counts of VMs vmglue no longer knows alive (removed by hand, deleted
	// by a hook meanwhile) are of no use any more.
	if !mode.DryRun {
		for id := range missing {
			if vm := known[id]; !seen[id] && (vm == nil || vm.Deleted()) {
				if err := s.absences.clear(ctx, name+"."+id); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Result is what one sweep found and did (or, in a dry run, would do).
type Result struct {
	Cloud  string
	DryRun bool
	Listed int // VMs the cloud listed
	Known  int // VMs vmglue knew alive before the sweep
	// Events published: VMs vmglue did not know, knew with an older or
	// other state, and VMs deleted.
	New, Changed, Deleted int
	// Duplicates of those the stream already had (a hook saw the same).
	Duplicates int
	// Spooled of those: NATS could not take them, the delivery will.
	Spooled int
	// Missing known VMs that are not deleted yet (fewer sweeps than
	// MissingSweeps, or a lookup that failed).
	Missing int
	// HeldBack deletions: more than MaxDeleteShare and MaxDeleteFloor
	// allow, not forced.
	HeldBack int
	Actions  []Action
	Duration time.Duration
}

// Published is the number of events the sweep sent.
func (r *Result) Published() int { return r.New + r.Changed + r.Deleted }

// Action is one VM the sweep did something about.
type Action struct {
	What   string `json:"what"` // ActionNew, ActionChanged, ActionDeleted, ActionMissing, ActionHeldBack
	VM     string `json:"vm"`   // the VM id
	Name   string `json:"name"`
	Detail string `json:"detail"` // "running", "stopped -> running", "1 of 2 sweeps", ...
}

// Kinds of Action.
const (
	ActionNew      = "new"
	ActionChanged  = "changed"
	ActionDeleted  = "deleted"
	ActionMissing  = "missing"
	ActionHeldBack = "held back"
)

// ErrPublish wraps a failed publish: the sweep stops, the next one retries.
var ErrPublish = errors.New("publish")
