package api

import (
	"context"
	"fmt"
	"strconv"

	"golang.org/x/sync/errgroup"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/opennebula"
)

// Pool filter flags and state filters of one.vmpool.info*.
const (
	FilterAll = -2 // every user's VMs (a sweep needs this: -1 shows oneadmin only its own and group 0's)

	StateAny        = -2 // every state, DONE included
	StateAnyButDone = -1 // every state but DONE
)

// VMPoolPage returns one page of one.vmpool.infoextended: the VM_POOL
// document (full VM bodies with only the last HISTORY record) of at most
// size VMs of every user, from offset on, in oned's list order, filtered by
// state (StateAnyButDone, StateAny, or a STATE number).
func (c *Client) VMPoolPage(ctx context.Context, offset, size, state int) (string, error) {
	// A negative end is a page: LIMIT offset, -end.
	return c.infoString(ctx, "one.vmpool.infoextended", FilterAll, offset, -size, state, "")
}

// VMInfo returns one.vm.info of a VM: its full document (every HISTORY
// record). A VM oned does not know gives an error matching ErrNotFound; a
// deleted one that oned still has comes back in state DONE.
func (c *Client) VMInfo(ctx context.Context, id int) (string, error) {
	return c.infoString(ctx, "one.vm.info", id, false)
}

func (c *Client) infoString(ctx context.Context, method string, args ...any) (string, error) {
	body, err := c.call(ctx, method, args...)
	if err != nil {
		return "", err
	}
	s, ok := body.(string)
	if !ok {
		return "", fmt.Errorf("%s: body is %T, want the XML document as a string: %w", method, body, ErrProtocol)
	}
	return s, nil
}

// ListVMs pages through one.vmpool.infoextended and maps every VM of the
// pool for cloud (state filter as for VMPoolPage), Options.Parallel pages
// at a time (parsing a page costs more than oned's answer). A VM listed
// twice (ids shifting between pages while VMs are created and deleted) is
// kept once. An error on any page fails the whole list: a partial pool is
// never returned.
func (c *Client) ListVMs(ctx context.Context, cloud string, state int) ([]eventbus.VM, error) {
	var all []eventbus.VM
	seen := map[string]bool{}
	size, par := c.o.PageSize, c.o.Parallel
	for batch := 0; ; batch += par * size {
		pages := make([][]eventbus.VM, par)
		g, gctx := errgroup.WithContext(ctx)
		for k := range pages {
			offset := batch + k*size
			g.Go(func() error {
				doc, err := c.VMPoolPage(gctx, offset, size, state)
				if err != nil {
					return fmt.Errorf("list vms of %s (offset %d): %w", cloud, offset, err)
				}
				pages[k], err = opennebula.ParsePoolWith([]byte(doc), cloud, c.o.Protect)
				if err != nil {
					return fmt.Errorf("list vms of %s (offset %d): %w", cloud, offset, err)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		for k, vms := range pages {
			added := 0
			for _, vm := range vms {
				if !seen[vm.ID] {
					seen[vm.ID] = true
					all = append(all, vm)
					added++
				}
			}
			if len(vms) < size {
				return all, nil
			}
			if added == 0 {
				// A full page of VMs seen before: the server ignores the range.
				return nil, fmt.Errorf("list vms of %s (offset %d): a full page of VMs already listed, the server ignores pagination: %w", cloud, batch+k*size, ErrProtocol)
			}
		}
	}
}

// VM returns one.vm.info of a VM mapped for cloud. found is false when oned
// does not know the id (a purged VM).
func (c *Client) VM(ctx context.Context, cloud, id string) (vm eventbus.VM, found bool, err error) {
	n, err := strconv.Atoi(id)
	if err != nil || n < 0 {
		return eventbus.VM{}, false, fmt.Errorf("vm %s of %s: not an OpenNebula VM id", id, cloud)
	}
	doc, err := c.VMInfo(ctx, n)
	if isNotFound(err) {
		return eventbus.VM{}, false, nil
	}
	if err != nil {
		return eventbus.VM{}, false, fmt.Errorf("vm %s of %s: %w", id, cloud, err)
	}
	vm, err = opennebula.ParseVMWith([]byte(doc), cloud, c.o.Protect)
	if err != nil {
		return eventbus.VM{}, false, fmt.Errorf("vm %s of %s: %w", id, cloud, err)
	}
	if vm.ID != id {
		return eventbus.VM{}, false, fmt.Errorf("vm %s of %s: one.vm.info answered VM %s: %w", id, cloud, vm.ID, ErrProtocol)
	}
	return vm, true, nil
}

func isNotFound(err error) bool {
	e, ok := err.(*Error)
	return ok && e.Is(ErrNotFound)
}
