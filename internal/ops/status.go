package ops

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// Status is the state of vmglue's streams, worker consumers and buckets:
// what `vmglue status` shows.
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

// ConsumerStatus is the state of a worker's durable consumer. Pending is
// its lag: stored events not yet delivered to it.
type ConsumerStatus struct {
	Name          string     `json:"name"`
	Pending       uint64     `json:"pending"`
	AckPending    int        `json:"ack_pending"`
	Redelivered   int        `json:"redelivered"`
	LastDelivered uint64     `json:"last_delivered_seq"`
	LastActive    *time.Time `json:"last_active,omitempty"`
}

// GetStatus reads the state of vmglue's streams, consumers and buckets.
// Workers are sorted by name. It returns eventbus.ErrNotProvisioned when
// the streams do not exist.
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
