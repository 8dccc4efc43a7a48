package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/vmglue/vmglue/eventbus"
)

// TailOptions select the events `vmglue tail` prints.
type TailOptions struct {
	Since    string // a duration ("1h") or an RFC 3339 time; "" = only new events
	All      bool   // from the first stored event
	Cloud    string
	VM       string
	Kind     string
	JSON     bool
	NoFollow bool
	// ShowSecrets prints secret VM attributes in JSON output; by default
	// their values are eventbus.RedactedValue.
	ShowSecrets bool
}

func tailCmd(g *globals) *cobra.Command {
	var o TailOptions
	c := &cobra.Command{
		Use:   "tail",
		Short: "Print events as they arrive (--json: one CloudEvent per line)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withJetStream("vmglue tail", func(js jetstream.JetStream) error {
				o.ShowSecrets = g.showSecrets
				return Tail(cmd.Context(), js, o, g.stdout)
			})
		},
	}
	c.Flags().StringVar(&o.Since, "since", "", "start with events stored since a duration ago (1h) or a time (2026-11-22T10:00:00Z)")
	c.Flags().BoolVar(&o.All, "all", false, "start with the first stored event")
	c.Flags().StringVar(&o.Cloud, "cloud", "", "only this cloud")
	c.Flags().StringVar(&o.VM, "vm", "", "only this VM id")
	c.Flags().StringVar(&o.Kind, "type", "", "only this kind (running, deleted, ... or vm.running)")
	c.Flags().BoolVar(&o.JSON, "json", false, "print one CloudEvent JSON per line")
	c.Flags().BoolVar(&o.NoFollow, "no-follow", false, "print what is stored and exit")
	return c
}

// ParseSince turns "1h30m" or an RFC 3339 time into a start time.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %q: negative duration", s)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration (1h) or a time (2026-11-22T10:00:00Z)", s)
}

// orderedConfig is the ordered consumer config of the events matching filter,
// from since (a ParseSince start, if given) or else by policy.
func orderedConfig(filter, since string, policy jetstream.DeliverPolicy) (jetstream.OrderedConsumerConfig, error) {
	cc := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: policy}
	if since != "" {
		t, err := ParseSince(since, time.Now())
		if err != nil {
			return cc, err
		}
		cc.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cc.OptStartTime = &t
	}
	return cc, nil
}

// TailFilter returns the subject filter of the options.
func TailFilter(o TailOptions) (string, error) {
	tok := func(v, name string) (string, error) {
		if v == "" {
			return "*", nil
		}
		if !eventbus.ValidToken(v) {
			return "", fmt.Errorf("--%s %q: use letters, digits, '-' and '_'", name, v)
		}
		return v, nil
	}
	kind := strings.TrimPrefix(o.Kind, eventbus.TypePrefix)
	if kind != "" && !validKindName(kind) {
		return "", fmt.Errorf("--type %q: want one of %s", o.Kind, strings.Join(eventbus.Kinds, ", "))
	}
	c, err := tok(o.Cloud, "cloud")
	if err != nil {
		return "", err
	}
	v, err := tok(o.VM, "vm")
	if err != nil {
		return "", err
	}
	k, _ := tok(kind, "type")
	return eventbus.SubjectPrefix + "." + c + "." + v + "." + k, nil
}

func validKindName(k string) bool {
	for _, x := range eventbus.Kinds {
		if x == k {
			return true
		}
	}
	return false
}

// Tail prints the selected events until ctx is done (or, with NoFollow, until
// every stored event has been printed).
func Tail(ctx context.Context, js jetstream.JetStream, o TailOptions, w io.Writer) error {
	filter, err := TailFilter(o)
	if err != nil {
		return err
	}
	policy := jetstream.DeliverNewPolicy
	if o.All || o.NoFollow {
		policy = jetstream.DeliverAllPolicy
	}
	cc, err := orderedConfig(filter, o.Since, policy)
	if err != nil {
		return err
	}
	cons, err := js.OrderedConsumer(ctx, eventbus.StreamEvents, cc)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return eventbus.ErrNotProvisioned
		}
		return fmt.Errorf("tail: %w", err)
	}
	if o.NoFollow {
		info, err := cons.Info(ctx)
		if err != nil {
			return fmt.Errorf("tail: %w", err)
		}
		if info.NumPending == 0 {
			return nil
		}
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	go func() { <-ctx.Done(); it.Stop() }()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("tail: %w", err)
		}
		if err := printEvent(w, m.Data(), o.JSON, o.ShowSecrets); err != nil {
			return err
		}
		if o.NoFollow {
			md, err := m.Metadata()
			if err == nil && md.NumPending == 0 {
				it.Stop()
				return nil
			}
		}
	}
}

func printEvent(w io.Writer, data []byte, asJSON, showSecrets bool) error {
	if asJSON {
		if !showSecrets {
			data = eventbus.RedactEventJSON(data)
		}
		_, err := fmt.Fprintf(w, "%s\n", strings.TrimSpace(string(data)))
		return err
	}
	ev, err := eventbus.Unmarshal(data)
	if err != nil {
		_, err = fmt.Fprintf(w, "(unreadable event: %v)\n", err)
		return err
	}
	_, err = fmt.Fprintln(w, FormatEvent(&ev))
	return err
}

// FormatEvent is the readable one-line form of an event.
func FormatEvent(ev *eventbus.Event) string {
	vm := &ev.Data
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s/%s %-9s %s", ev.Time.UTC().Format(time.RFC3339), vm.Cloud, vm.ID, vm.Kind, vm.Name)
	st := vm.State
	if vm.LCMState != "" {
		st += "/" + vm.LCMState
	}
	fmt.Fprintf(&b, " state=%s", st)
	if vm.Host != "" {
		fmt.Fprintf(&b, " host=%s", vm.Host)
	}
	var ips []string
	for _, n := range vm.NICs {
		for _, ip := range []string{n.IP, n.IP6Global, n.IP6ULA, n.IP6} {
			if ip != "" {
				ips = append(ips, ip)
			}
		}
	}
	if len(ips) > 0 {
		fmt.Fprintf(&b, " ips=%s", strings.Join(ips, ","))
	}
	fmt.Fprintf(&b, " id=%s", ev.ID)
	return b.String()
}
