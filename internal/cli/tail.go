package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/ops"
)

func tailCmd(g *globals) *cobra.Command {
	var req ops.TailRequest
	var asJSON bool
	c := &cobra.Command{
		Use:   "tail",
		Short: "Print events as they arrive (--json: one CloudEvent per line)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withJetStream("vmglue tail", func(js jetstream.JetStream) error {
				req.ShowSecrets, req.Secrets = g.showSecrets, g.secrets
				return ops.Tail(cmd.Context(), js, req, func(data []byte) error {
					return printEvent(g.stdout, data, asJSON)
				})
			})
		},
	}
	c.Flags().StringVar(&req.Since, "since", "", "start with events stored since a duration ago (1h) or a time (2026-11-22T10:00:00Z)")
	c.Flags().BoolVar(&req.All, "all", false, "start with the first stored event")
	c.Flags().StringVar(&req.Cloud, "cloud", "", "only this cloud")
	c.Flags().StringVar(&req.VM, "vm", "", "only this VM id")
	c.Flags().StringVar(&req.Kind, "type", "", "only this kind (running, deleted, ... or vm.running)")
	c.Flags().BoolVar(&asJSON, "json", false, "print one CloudEvent JSON per line")
	c.Flags().BoolVar(&req.NoFollow, "no-follow", false, "print what is stored and exit")
	return c
}

// printEvent prints a stored event body as JSON or as FormatEvent's line.
func printEvent(w io.Writer, data []byte, asJSON bool) error {
	if asJSON {
		_, err := fmt.Fprintf(w, "%s\n", strings.TrimSpace(string(data)))
		return err
	}
	_, err := fmt.Fprintln(w, readableEvent(data))
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
	if ips := ops.Addresses(vm); len(ips) > 0 {
		fmt.Fprintf(&b, " ips=%s", strings.Join(ips, ","))
	}
	fmt.Fprintf(&b, " id=%s", ev.ID)
	return b.String()
}
