package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// Status is what `vmglue status` shows.
type Status struct {
	Streams []StreamStatus `json:"streams"`
	Workers []WorkerStatus `json:"workers"`
	// VMs is the number of VMs with a snapshot (keys of VMGLUE_VMS).
	VMs int `json:"vms"`
}

// StreamStatus is the state of one stream.
type StreamStatus struct {
	Name     string     `json:"name"`
	Messages uint64     `json:"messages"`
	Bytes    uint64     `json:"bytes"`
	First    *time.Time `json:"first,omitempty"`
	Last     *time.Time `json:"last,omitempty"`
}

// WorkerStatus is one worker: its durable consumer (nil when it has none,
// e.g. a removed worker that left dead letters), its registry size and its
// dead letters.
type WorkerStatus struct {
	Worker      string          `json:"worker"`
	Consumer    *ConsumerStatus `json:"consumer,omitempty"`
	Records     int             `json:"records"`
	DeadLetters uint64          `json:"dead_letters"`
}

// ConsumerStatus is the state of a worker's durable consumer.
type ConsumerStatus struct {
	Name          string     `json:"name"`
	Pending       uint64     `json:"pending"`
	AckPending    int        `json:"ack_pending"`
	Redelivered   int        `json:"redelivered"`
	LastDelivered uint64     `json:"last_delivered_seq"`
	LastActive    *time.Time `json:"last_active,omitempty"`
}

func statusCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Streams, worker consumers, registries and dead letters at a glance",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withJetStream("vmglue status", func(js jetstream.JetStream) error {
				st, err := GetStatus(cmd.Context(), js)
				if err != nil {
					return err
				}
				return writeJSONOr(g.stdout, asJSON, st, printStatus)
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON document")
	return c
}

// GetStatus reads the state of vmglue's streams, consumers and buckets.
func GetStatus(ctx context.Context, js jetstream.JetStream) (*Status, error) {
	out := &Status{Streams: []StreamStatus{}, Workers: []WorkerStatus{}}
	workers := map[string]*WorkerStatus{}
	ws := func(name string) *WorkerStatus {
		if workers[name] == nil {
			workers[name] = &WorkerStatus{Worker: name}
		}
		return workers[name]
	}
	for _, name := range []string{eventbus.StreamEvents, eventbus.StreamDLQ} {
		st, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, eventbus.ErrNotProvisioned
		}
		if err != nil {
			return nil, fmt.Errorf("open stream %s: %w", name, err)
		}
		var opts []jetstream.StreamInfoOpt
		if name == eventbus.StreamDLQ {
			opts = append(opts, jetstream.WithSubjectFilter(eventbus.DLQPrefix+".>"))
		}
		info, err := st.Info(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("stream %s info: %w", name, err)
		}
		s := StreamStatus{Name: name, Messages: info.State.Msgs, Bytes: info.State.Bytes}
		if info.State.Msgs > 0 {
			first, last := info.State.FirstTime.UTC(), info.State.LastTime.UTC()
			s.First, s.Last = &first, &last
		}
		out.Streams = append(out.Streams, s)
		for subj, n := range info.State.Subjects { // vmglue.dlq.<worker>.<cloud>.<vmid>
			ws(subjectToken(subj, 2)).DeadLetters += n
		}
		if name != eventbus.StreamEvents {
			continue
		}
		l := st.ListConsumers(ctx)
		for ci := range l.Info() {
			w, ok := strings.CutPrefix(ci.Name, worker.ConsumerName(""))
			if !ok || ci.Config.Durable == "" {
				continue // tail's ordered consumers and foreign ones
			}
			ws(w).Consumer = &ConsumerStatus{Name: ci.Name, Pending: ci.NumPending, AckPending: ci.NumAckPending,
				Redelivered: ci.NumRedelivered, LastDelivered: ci.Delivered.Stream, LastActive: ci.Delivered.Last}
		}
		if err := l.Err(); err != nil {
			return nil, fmt.Errorf("list consumers of %s: %w", name, err)
		}
	}
	var err error
	out.VMs = len(bucketKeys(ctx, js, eventbus.BucketVMs, ">", &err))
	for _, key := range bucketKeys(ctx, js, eventbus.BucketApplied, ">", &err) {
		ws(subjectToken(key, 0)).Records++
	}
	if err != nil {
		return nil, err
	}
	for _, w := range workers {
		out.Workers = append(out.Workers, *w)
	}
	sort.Slice(out.Workers, func(i, j int) bool { return out.Workers[i].Worker < out.Workers[j].Worker })
	return out, nil
}

func printStatus(w io.Writer, s *Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tMESSAGES\tBYTES\tFIRST\tLAST")
	for _, st := range s.Streams {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", st.Name, st.Messages, st.Bytes, fmtTime(st.First), fmtTime(st.Last))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "WORKER\tCONSUMER\tPENDING\tACK PENDING\tREDELIVERED\tLAST DELIVERED\tRECORDS\tDEAD LETTERS")
	for _, ws := range s.Workers {
		c := ws.Consumer
		if c == nil {
			fmt.Fprintf(tw, "%s\t(none)\t-\t-\t-\t-\t%d\t%d\n", ws.Worker, ws.Records, ws.DeadLetters)
			continue
		}
		last := "-"
		if c.LastDelivered > 0 {
			last = fmt.Sprintf("#%d %s", c.LastDelivered, fmtTime(c.LastActive))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%d\t%d\n", ws.Worker, c.Name, c.Pending, c.AckPending,
			c.Redelivered, last, ws.Records, ws.DeadLetters)
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "VMs known:\t%d\n", s.VMs)
	return tw.Flush()
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
