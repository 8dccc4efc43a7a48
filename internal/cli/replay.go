package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// HeaderReplay marks an event that `vmglue replay` republished.
const HeaderReplay = "Vmglue-Replay"

// ReplayOptions select the stored events `vmglue replay` republishes.
type ReplayOptions struct {
	Since         string // a duration ("1h") or a time, as for tail
	StartSequence uint64
	All           bool
	Cloud         string
	VM            string
	Kind          string
	Worker        string
	DryRun        bool
}

func replayCmd(g *globals) *cobra.Command {
	var o ReplayOptions
	c := &cobra.Command{
		Use:   "replay",
		Short: "Republish stored events so that the workers converge again (--dry-run shows the plan)",
		Long: `Republish the stored events that match the filter, each to its own subject,
without its Nats-Msg-Id (the stream's duplicate window would drop it) and with
the header ` + HeaderReplay + `: 1.

Every worker sees a replayed event, or with --worker only that worker (the
header ` + worker.HeaderForWorker + `; the others ack it unseen). That is safe:
a worker converges a VM to its newest known snapshot, never to an older event,
and changes nothing when its target is already right. So replay repairs
targets that drifted or lost state; it cannot roll a VM back.

At least one filter or --all is required. --dry-run prints each event that
would be republished and the count, and publishes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if o.Worker != "" {
				cfg, err := g.load()
				if err != nil {
					return err
				}
				// Without a config the names are unknown here: a name no
				// worker has makes every worker skip the events.
				if names := cfg.Workers.Names(); len(names) > 0 && !slices.Contains(names, o.Worker) {
					return fmt.Errorf("--worker %s: not a configured worker (configured: %s)", o.Worker, strings.Join(names, ", "))
				}
			}
			return g.withJetStream("vmglue replay", func(js jetstream.JetStream) error {
				return Replay(cmd.Context(), js, o, g.stdout)
			})
		},
	}
	c.Flags().StringVar(&o.Since, "since", "", "events stored since a duration ago (1h) or a time (2026-11-22T10:00:00Z)")
	c.Flags().Uint64Var(&o.StartSequence, "start-sequence", 0, "events from this stream sequence on")
	c.Flags().BoolVar(&o.All, "all", false, "every stored event (required when no other filter is given)")
	c.Flags().StringVar(&o.Cloud, "cloud", "", "only this cloud")
	c.Flags().StringVar(&o.VM, "vm", "", "only this VM id")
	c.Flags().StringVar(&o.Kind, "type", "", "only this kind (running, deleted, ... or vm.running)")
	c.Flags().StringVar(&o.Worker, "worker", "", "only this worker (dns, lb, puppet) converges the replayed events")
	c.Flags().BoolVar(&o.DryRun, "dry-run", false, "print the events that would be republished and exit")
	return c
}

// check rejects option sets that are unsupported or would replay everything
// by accident.
func (o *ReplayOptions) check() error {
	switch {
	case o.Worker != "" && !eventbus.ValidToken(o.Worker):
		return fmt.Errorf("--worker %q: use letters, digits, '-' and '_'", o.Worker)
	case o.Since != "" && o.StartSequence != 0:
		return errors.New("--since and --start-sequence: use one of them")
	case o.Since == "" && o.StartSequence == 0 && o.Cloud == "" && o.VM == "" && o.Kind == "" && !o.All:
		return errors.New("no filter: give --since, --start-sequence, --vm, --cloud or --type, or --all to replay every stored event")
	}
	return nil
}

// Replay republishes (or, with DryRun, lists) the stored events selected by
// o and reports the count. Only events stored before it started are
// replayed, never its own.
func Replay(ctx context.Context, js jetstream.JetStream, o ReplayOptions, w io.Writer) error {
	if err := o.check(); err != nil {
		return err
	}
	filter, err := TailFilter(TailOptions{Cloud: o.Cloud, VM: o.VM, Kind: o.Kind})
	if err != nil {
		return err
	}
	cc, err := orderedConfig(filter, o.Since, jetstream.DeliverAllPolicy)
	if err != nil {
		return err
	}
	if o.StartSequence != 0 { // check: not with Since
		cc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cc.OptStartSeq = o.StartSequence
	}
	n := 0
	err = scanEvents(ctx, js, cc, func(m jetstream.Msg, seq uint64) error {
		n++
		if o.DryRun {
			_, err := fmt.Fprintf(w, "would replay #%d %s\n", seq, readableEvent(m.Data()))
			return err
		}
		pm := nats.NewMsg(m.Subject())
		pm.Data = m.Data()
		pm.Header.Set(HeaderReplay, "1")
		if o.Worker != "" {
			pm.Header.Set(worker.HeaderForWorker, o.Worker)
		}
		if _, err := js.PublishMsg(ctx, pm, jetstream.WithExpectStream(eventbus.StreamEvents)); err != nil {
			return fmt.Errorf("replay #%d: %w (%d event(s) replayed before)", seq, err, n-1)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if o.DryRun {
		_, err = fmt.Fprintf(w, "%d event(s) would be replayed (dry run: nothing published)\n", n)
	} else {
		_, err = fmt.Fprintf(w, "replayed %d event(s)\n", n)
	}
	return err
}

// readableEvent is FormatEvent of a stored message body.
func readableEvent(data []byte) string {
	ev, err := eventbus.Unmarshal(data)
	if err != nil {
		return "(unreadable event: " + err.Error() + ")"
	}
	return FormatEvent(&ev)
}

// scanEvents calls fn, in stream order, for every event that cc selects and
// that was stored when the scan started: events published meanwhile (by fn
// itself, say) are not part of the scan.
func scanEvents(ctx context.Context, js jetstream.JetStream, cc jetstream.OrderedConsumerConfig, fn func(m jetstream.Msg, seq uint64) error) error {
	st, err := js.Stream(ctx, eventbus.StreamEvents)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return eventbus.ErrNotProvisioned
	}
	if err != nil {
		return fmt.Errorf("open stream %s: %w", eventbus.StreamEvents, err)
	}
	last := st.CachedInfo().State.LastSeq
	if st.CachedInfo().State.Msgs == 0 {
		return nil
	}
	cons, err := js.OrderedConsumer(ctx, eventbus.StreamEvents, cc)
	if err != nil {
		return fmt.Errorf("read %s: %w", eventbus.StreamEvents, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("read %s: %w", eventbus.StreamEvents, err)
	}
	if info.NumPending == 0 {
		return nil
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("read %s: %w", eventbus.StreamEvents, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read %s: %w", eventbus.StreamEvents, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("read %s: %w", eventbus.StreamEvents, err)
		}
		seq := md.Sequence.Stream
		if seq > last {
			return nil
		}
		if err := fn(m, seq); err != nil {
			return err
		}
		if md.NumPending == 0 || seq == last {
			return nil
		}
	}
}
