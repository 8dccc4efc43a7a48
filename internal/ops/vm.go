package ops

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// VMRequest names the VM VMReports looks at.
type VMRequest struct {
	Cloud string // "" for every cloud with a VM of that id
	ID    string
	// Workers are the configured worker names: each gets an entry in
	// VMReport.Workers even without a record.
	Workers []string
	// ShowSecrets keeps secret VM attributes; by default their values are
	// eventbus.RedactedValue.
	ShowSecrets bool
	// Secrets are the secret attribute names (config secret_attributes);
	// nil: eventbus.DefaultSecretPatterns.
	Secrets *eventbus.SecretNames
}

// VMReport is what is known of one VM in one cloud: what `vmglue vm` shows.
type VMReport struct {
	Cloud string `json:"cloud"`
	ID    string `json:"id"`
	// Timeline holds every stored event of the VM, oldest first.
	Timeline []StoredEvent `json:"timeline"`
	// Snapshot is the newest snapshot the workers converge to (nil if none).
	Snapshot *eventbus.VM `json:"snapshot"`
	// Workers holds each worker's registry record; nil for a configured
	// worker that recorded nothing for the VM.
	Workers     map[string]*worker.Record `json:"workers"`
	DeadLetters []worker.StoredDeadLetter `json:"dead_letters"`
}

// ErrNothing is wrapped when VMReports finds nothing of a VM.
var ErrNothing = errors.New("nothing found")

// VMReports collects what is known of a VM, one report per cloud, sorted by
// cloud: its events, newest snapshot, each worker's record and its dead
// letters.
func VMReports(ctx context.Context, js jetstream.JetStream, req VMRequest) ([]VMReport, error) {
	if err := checkToken(req.ID, "vm id"); err != nil {
		return nil, err
	}
	cloudTok := "*"
	if req.Cloud != "" {
		if err := checkToken(req.Cloud, "--cloud"); err != nil {
			return nil, err
		}
		cloudTok = req.Cloud
	}
	id := req.ID
	reps := map[string]*VMReport{}
	rep := func(c string) *VMReport {
		if reps[c] == nil {
			reps[c] = &VMReport{Cloud: c, ID: id, Timeline: []StoredEvent{}, Workers: map[string]*worker.Record{}, DeadLetters: []worker.StoredDeadLetter{}}
		}
		return reps[c]
	}
	cc := jetstream.OrderedConsumerConfig{FilterSubjects: []string{eventbus.VMSubject(cloudTok, id)}, DeliverPolicy: jetstream.DeliverAllPolicy}
	err := scanEvents(ctx, js, cc, func(m jetstream.Msg, seq uint64) error {
		r := rep(subjectToken(m.Subject(), 2))
		r.Timeline = append(r.Timeline, storedEvent(m, seq, req.ShowSecrets, req.Secrets))
		return nil
	})
	if err != nil {
		return nil, err
	}
	snaps, err := worker.OpenSnapshots(ctx, js)
	if err != nil {
		return nil, err
	}
	for _, key := range bucketKeys(ctx, js, eventbus.BucketVMs, cloudTok+"."+id, &err) {
		vm, _, gerr := snaps.Get(ctx, key)
		if gerr != nil {
			return nil, gerr
		}
		if vm != nil {
			rep(strings.TrimSuffix(key, "."+id)).Snapshot = redactVM(vm, req.ShowSecrets, req.Secrets)
		}
	}
	for _, key := range bucketKeys(ctx, js, eventbus.BucketApplied, "*."+cloudTok+"."+id, &err) {
		w, c := subjectToken(key, 0), subjectToken(key, 1)
		reg, rerr := worker.OpenRegistry(ctx, js, w)
		if rerr != nil {
			return nil, rerr
		}
		rec, _, rerr := reg.Get(ctx, c+"."+id)
		if rerr != nil {
			return nil, rerr
		}
		if rec != nil {
			rep(c).Workers[w] = rec
		}
	}
	if err != nil {
		return nil, err
	}
	dls, err := worker.ListVMDeadLetters(ctx, js, cloudTok, id)
	if err != nil {
		return nil, err
	}
	for _, dl := range redactDeadLetters(dls, req.ShowSecrets, req.Secrets) {
		r := rep(subjectToken(dl.Subject, 2))
		r.DeadLetters = append(r.DeadLetters, dl)
	}
	if len(reps) == 0 {
		return nil, fmt.Errorf("vm %s: %w (no event, snapshot, worker record or dead letter)", id, ErrNothing)
	}
	out := make([]VMReport, 0, len(reps))
	for _, r := range reps {
		for _, w := range req.Workers {
			if _, ok := r.Workers[w]; !ok {
				r.Workers[w] = nil
			}
		}
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Cloud < out[j].Cloud })
	return out, nil
}

// redactVM returns vm with its secret attributes (names: nil for the
// defaults) redacted unless show.
func redactVM(vm *eventbus.VM, show bool, names *eventbus.SecretNames) *eventbus.VM {
	if show {
		return vm
	}
	r, _ := names.Redact(vm)
	return r
}
