package cli

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/vmglue/vmglue/internal/sweep"
)

// SweepOptions are the flags of `vmglue sweep`.
type SweepOptions struct {
	Cloud  string
	DryRun bool
	Force  bool
	JSON   bool
}

func sweepCmd(g *globals) *cobra.Command {
	var o SweepOptions
	c := &cobra.Command{
		Use:   "sweep",
		Short: "Compare the clouds' APIs with the VMs vmglue knows, and publish what differs (--dry-run shows the plan)",
		Long: `List every VM of each cloud in the config's sweep section (or only --cloud)
and compare with the snapshots vmglue holds:

  - a VM vmglue does not know, or knows in an older or other state, gets its
    snapshot published as an event (CloudEvents extension vmglueorigin=sweep);
  - a VM vmglue knows that the cloud no longer lists is deleted once it was
    missing from sweep.missing_sweeps successful sweeps in a row (default 2;
    the count is kept in NATS, so sweeps of serve and of this command add up)
    and the cloud's API, asked for that VM alone, does not have it alive;
  - never after an API error, and never more than sweep.max_delete_share of
    the cloud's known VMs at once (default 0.25) when that is also more than
    sweep.max_delete_floor deletions (default 3): those are held back, unless
    --force;
  - unchanged VMs publish nothing.

--dry-run prints what would happen and changes nothing (no event, no count).
Exit status 1 when a cloud could not be swept.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if cfg.Sweep == nil {
				return errors.New("no sweep section in the config: add sweep.opennebula or sweep.openstack")
			}
			log := zerolog.Nop()
			if !o.JSON {
				log = newLogger(cfg.Log, g.stderr).Level(zerolog.WarnLevel)
			}
			return g.withJetStream("vmglue sweep", func(js jetstream.JetStream) error {
				ctx := cmd.Context()
				sweepers, closeAll, err := sweep.Build(ctx, cfg.Sweep, o.Cloud, js, sweep.JetStreamPublisher{JS: js}, nil, log)
				if err != nil {
					return err
				}
				defer closeAll()
				failed := 0
				for _, s := range sweepers {
					r, err := s.Run(ctx, sweep.Mode{DryRun: o.DryRun, Force: o.Force})
					if o.JSON {
						if werr := r.WriteJSON(g.stdout, err); werr != nil {
							return werr
						}
					} else if werr := r.Write(g.stdout); werr != nil {
						return werr
					}
					if err != nil {
						failed++
						if !o.JSON {
							fmt.Fprintf(g.stderr, "vmglue: %v\n", err)
						}
					}
				}
				if failed > 0 {
					return &exitError{code: 1}
				}
				return nil
			})
		},
	}
	c.Flags().StringVar(&o.Cloud, "cloud", "", "only this cloud (a name of the sweep section)")
	c.Flags().BoolVar(&o.DryRun, "dry-run", false, "print what the sweep would do and change nothing")
	c.Flags().BoolVar(&o.Force, "force", false, "delete even when more than max_delete_floor and max_delete_share of the known VMs are gone")
	c.Flags().BoolVar(&o.JSON, "json", false, "one JSON line per cloud")
	return c
}
