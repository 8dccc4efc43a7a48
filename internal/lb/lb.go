package lb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/internal/worker"
)

// Target keeps HAProxy pools in line with the VMs: it is the worker.Target
// of the lb worker. Create it with New.
type Target struct {
	cfg     Config
	log     zerolog.Logger
	clients map[string]*Client // by instance name
	now     func() time.Time
	metrics metrics
	// installation is worker.Deps.Installation, for <installation> in
	// server_name.
	installation string

	mu  sync.Mutex
	vms map[string]*vmState // by VM key; see prune
	gen uint64              // Resyncs begun, see prune

	// guard, when set, runs each repair of a Resync under the VM's lease
	// with its current registry record (worker.Runner.Guard).
	guard worker.GuardFunc
}

// SetGuard makes Resync check every repair with g, so that a Resync in one
// vmglue process never re-adds a server a converge in another process has
// just removed. Call it before the runtime starts.
func (t *Target) SetGuard(g worker.GuardFunc) { t.guard = g }

// ResyncInterval is workers.lb.resync_interval: it wins over the runtime's.
func (t *Target) ResyncInterval() time.Duration { return t.cfg.ResyncInterval }

// RunBeside watches the instances for reloads until ctx ends: a reloaded
// HAProxy forgot our servers, so r resyncs at once (through the runner, so
// that Resync never races a converge).
func (t *Target) RunBeside(ctx context.Context, r *worker.Runner) {
	t.WatchReloads(ctx, func(string) { r.TriggerResync() })
}

var _ worker.Target = (*Target)(nil)

// New validates cfg (after filling its defaults) and returns the Target.
// It does not contact HAProxy.
func New(cfg Config, deps worker.Deps) (*Target, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if strings.Contains(cfg.ServerName, "<installation>") && deps.Installation == "" {
		return nil, errors.New("lb.server_name: <installation> needs the installation identity (vmglue serve sets it)")
	}
	t := &Target{cfg: cfg, log: deps.Log.With().Str("worker", "lb").Logger(), installation: deps.Installation,
		clients: map[string]*Client{}, now: time.Now, vms: map[string]*vmState{}, metrics: newMetrics()}
	for _, in := range cfg.Instances {
		c, err := NewClient(in.Address, cfg.CommandTimeout)
		if err != nil {
			return nil, fmt.Errorf("instance %s: %w", in.Name, err)
		}
		t.clients[in.Name] = c
	}
	return t, nil
}

// Name returns "lb".
func (t *Target) Name() string { return "lb" }

// Config returns the configuration in use, defaults filled.
func (t *Target) Config() Config { return t.cfg }

// outcome gathers the errors of one Apply or Resync across instances and
// objects, and reduces them to the one error the runtime acts on.
type outcome struct {
	transient, permanent []error
	requeue              *worker.RequeueError
}

func (o *outcome) add(err error) {
	var rq *worker.RequeueError
	switch {
	case err == nil:
	case errors.As(err, &rq):
		if o.requeue == nil || rq.After < o.requeue.After {
			o.requeue = rq
		}
	case worker.IsPermanent(err):
		o.permanent = append(o.permanent, err)
	default:
		o.transient = append(o.transient, err)
	}
}

// err returns the Requeue of a drain in progress if there is one (an
// instance that failed meanwhile is retried with it, without using up
// deliveries: its objects are recorded as markers Resync completes, see
// unreached), else a transient error if any instance failed transiently
// (so the runtime retries just what is missing), else the permanent errors
// (a conflict, a rejected server).
func (o *outcome) err() error {
	switch {
	case o.requeue != nil && len(o.transient) > 0:
		msgs := make([]string, len(o.transient))
		for i, e := range o.transient {
			msgs[i] = e.Error()
		}
		return worker.Requeue(o.requeue.After, o.requeue.Reason+"; meanwhile: "+strings.Join(msgs, "; "))
	case o.requeue != nil:
		return o.requeue
	case len(o.transient) > 0:
		return errors.Join(append(o.transient, o.permanent...)...)
	case len(o.permanent) > 0:
		return worker.Permanent(errors.Join(o.permanent...))
	}
	return nil
}

// unreachable reports whether err means the instance cannot be talked to,
// so the remaining commands for it are skipped.
func unreachable(err error) bool {
	return errors.Is(err, ErrUnreachable) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded)
}
