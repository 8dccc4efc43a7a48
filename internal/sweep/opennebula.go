package sweep

import (
	"context"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/opennebula/api"
)

// OpenNebula is a Cloud on oned's XML-RPC API: it lists the VMs of every
// user in every state but DONE (one.vmpool.infoextended, paged) and looks a
// VM up with one.vm.info. The snapshots are mapped as the hook maps them, so
// the hook and the sweep make the same event of the same VM document.
type OpenNebula struct {
	name string
	c    *api.Client
}

// NewOpenNebula returns the Cloud named name (as the hook's VMGLUE_CLOUD) on c.
func NewOpenNebula(name string, c *api.Client) *OpenNebula { return &OpenNebula{name: name, c: c} }

// Name implements Cloud.
func (o *OpenNebula) Name() string { return o.name }

// List implements Cloud.
func (o *OpenNebula) List(ctx context.Context) ([]eventbus.VM, error) {
	return o.c.ListVMs(ctx, o.name, api.StateAnyButDone)
}

// Lookup implements Cloud.
func (o *OpenNebula) Lookup(ctx context.Context, id string) (eventbus.VM, bool, error) {
	return o.c.VM(ctx, o.name, id)
}
