package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// VMReport is what `vmglue vm` shows of one VM.
type VMReport struct {
	Cloud    string          `json:"cloud"`
	ID       string          `json:"id"`
	Timeline []TimelineEntry `json:"timeline"`
	// Snapshot is the newest snapshot the workers converge to (nil if none).
	Snapshot *eventbus.VM `json:"snapshot"`
	// Workers holds each worker's registry record; nil for a configured
	// worker that recorded nothing for the VM.
	Workers     map[string]*worker.Record `json:"workers"`
	DeadLetters []worker.StoredDeadLetter `json:"dead_letters"`
}

// TimelineEntry is one stored event of a VM.
type TimelineEntry struct {
	Seq    uint64          `json:"seq"`
	Stored time.Time       `json:"stored"`
	Event  *eventbus.Event `json:"event,omitempty"`
	Error  string          `json:"error,omitempty"` // an unreadable event
}

// errNothing is wrapped when `vmglue vm` finds nothing of a VM.
var errNothing = errors.New("nothing found")

func vmCmd(g *globals) *cobra.Command {
	var cloud string
	var asJSON bool
	c := &cobra.Command{
		Use:   "vm <id>",
		Short: "A VM's timeline, newest snapshot, what each worker applied, and its dead letters",
		Long: `Show one VM: every stored event of it, the newest snapshot (what the workers
converge to), each worker's registry record (applied and pending objects, last
error) and its dead letters. Without --cloud, every cloud with a VM of that id
is shown.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			return g.withJetStream("vmglue vm", func(js jetstream.JetStream) error {
				reps, err := VMReports(cmd.Context(), js, cloud, args[0], cfg.Workers.Names())
				if err != nil {
					return err
				}
				if !g.showSecrets {
					redactReports(reps)
				}
				return writeJSONOr(g.stdout, asJSON, reps, printVMReports)
			})
		},
	}
	c.Flags().StringVar(&cloud, "cloud", "", "only this cloud")
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON document (an array, one element per cloud)")
	return c
}

// VMReports collects what is known of VM id in cloud ("" for every cloud),
// one report per cloud, sorted by cloud. workers are the configured worker
// names: they get an entry even without a record.
func VMReports(ctx context.Context, js jetstream.JetStream, cloud, id string, workers []string) ([]VMReport, error) {
	if !eventbus.ValidToken(id) {
		return nil, fmt.Errorf("vm id %q: use letters, digits, '-' and '_'", id)
	}
	cloudTok := "*"
	if cloud != "" {
		if !eventbus.ValidToken(cloud) {
			return nil, fmt.Errorf("--cloud %q: use letters, digits, '-' and '_'", cloud)
		}
		cloudTok = cloud
	}
	reps := map[string]*VMReport{}
	rep := func(c string) *VMReport {
		if reps[c] == nil {
			reps[c] = &VMReport{Cloud: c, ID: id, Timeline: []TimelineEntry{}, Workers: map[string]*worker.Record{}, DeadLetters: []worker.StoredDeadLetter{}}
		}
		return reps[c]
	}
	cc := jetstream.OrderedConsumerConfig{FilterSubjects: []string{eventbus.VMSubject(cloudTok, id)}, DeliverPolicy: jetstream.DeliverAllPolicy}
	err := scanEvents(ctx, js, cc, func(m jetstream.Msg, seq uint64) error {
		e := TimelineEntry{Seq: seq}
		if md, err := m.Metadata(); err == nil {
			e.Stored = md.Timestamp.UTC()
		}
		if ev, err := eventbus.Unmarshal(m.Data()); err != nil {
			e.Error = err.Error()
		} else {
			e.Event = &ev
		}
		r := rep(subjectToken(m.Subject(), 2))
		r.Timeline = append(r.Timeline, e)
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
			rep(strings.TrimSuffix(key, "."+id)).Snapshot = vm
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
	for _, dl := range dls {
		r := rep(subjectToken(dl.Subject, 2))
		r.DeadLetters = append(r.DeadLetters, dl)
	}
	if len(reps) == 0 {
		return nil, fmt.Errorf("vm %s: %w (no event, snapshot, worker record or dead letter)", id, errNothing)
	}
	out := make([]VMReport, 0, len(reps))
	for _, r := range reps {
		for _, w := range workers {
			if _, ok := r.Workers[w]; !ok {
				r.Workers[w] = nil
			}
		}
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Cloud < out[j].Cloud })
	return out, nil
}

// bucketKeys lists the keys of a KV bucket matching filter. The first
// error is stored in *errp (and nothing returned), so that calls chain.
func bucketKeys(ctx context.Context, js jetstream.JetStream, bucket, filter string, errp *error) []string {
	if *errp != nil {
		return nil
	}
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		*errp = fmt.Errorf("open bucket %s: %w", bucket, err)
		return nil
	}
	l, err := kv.ListKeysFiltered(ctx, filter)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		*errp = fmt.Errorf("list %s: %w", bucket, err)
		return nil
	}
	defer l.Stop()
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	return keys
}

// subjectToken returns the i-th dot-separated token of s, "?" if missing.
func subjectToken(s string, i int) string {
	t := strings.Split(s, ".")
	if i >= len(t) {
		return "?"
	}
	return t[i]
}

func printVMReports(w io.Writer, reps []VMReport) error {
	for _, r := range reps {
		printVMReport(w, &r)
	}
	return nil
}

func printVMReport(w io.Writer, r *VMReport) {
	name := ""
	if r.Snapshot != nil {
		name = " " + r.Snapshot.Name
	}
	fmt.Fprintf(w, "vm %s/%s%s\n", r.Cloud, r.ID, name)
	fmt.Fprintf(w, "  timeline (%d event(s)):\n", len(r.Timeline))
	for _, e := range r.Timeline {
		if e.Event == nil {
			fmt.Fprintf(w, "    #%d (unreadable event: %s)\n", e.Seq, e.Error)
			continue
		}
		fmt.Fprintf(w, "    #%d %s\n", e.Seq, FormatEvent(e.Event))
	}
	if s := r.Snapshot; s != nil {
		changed := "-"
		if s.Version.Changed != 0 {
			changed = time.Unix(0, s.Version.Changed).UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "  snapshot: %s state=%s/%s host=%s version seq=%d changed=%s deleted=%t\n",
			s.Kind, s.State, s.LCMState, s.Host, s.Version.Seq, changed, s.Deleted())
	} else {
		fmt.Fprintln(w, "  snapshot: none")
	}
	names := make([]string, 0, len(r.Workers))
	for n := range r.Workers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		printRecord(w, n, r.Workers[n])
	}
	fmt.Fprintf(w, "  dead letters (%d):\n", len(r.DeadLetters))
	for _, dl := range r.DeadLetters {
		fmt.Fprintf(w, "    #%d %s %s %s (event #%d, %d deliveries): %s\n", dl.Seq, dl.Worker,
			dl.FailedAt.UTC().Format(time.RFC3339), dl.Reason, dl.StreamSeq, dl.Deliveries, oneLine(dl.Error))
	}
}

func printRecord(w io.Writer, name string, rec *worker.Record) {
	if rec == nil {
		fmt.Fprintf(w, "  worker %s: nothing recorded\n", name)
		return
	}
	fmt.Fprintf(w, "  worker %s: %d applied, %d pending, updated %s by event %s\n",
		name, len(rec.Applied), len(rec.Pending), rec.Updated.UTC().Format(time.RFC3339), rec.EventID)
	for _, set := range []struct {
		label string
		objs  worker.Objects
	}{{"applied", rec.Applied}, {"pending", rec.Pending}} {
		keys := make([]string, 0, len(set.objs))
		for k := range set.objs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "    %s %s = %s\n", set.label, k, set.objs[k])
		}
	}
	if rec.Error != "" {
		fmt.Fprintf(w, "    last error: %s\n", oneLine(rec.Error))
	}
}

// redactReports replaces the secret VM attributes in reps (events,
// snapshots, dead letters) with eventbus.RedactedValue.
func redactReports(reps []VMReport) {
	for i := range reps {
		r := &reps[i]
		for _, e := range r.Timeline {
			if e.Event != nil {
				vm, _ := e.Event.Data.Redacted()
				e.Event.Data = *vm
			}
		}
		if r.Snapshot != nil {
			r.Snapshot, _ = r.Snapshot.Redacted()
		}
		for j := range r.DeadLetters {
			r.DeadLetters[j].Event = eventbus.RedactEventJSON(r.DeadLetters[j].Event)
		}
	}
}
