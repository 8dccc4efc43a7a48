package monitor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vmglue/vmglue/internal/worker"
)

var (
	_ worker.Resyncer = (*Target)(nil)
	_ worker.Guarded  = (*Target)(nil)
)

// SetGuard makes Resync repair each VM under its lease, with the objects
// applied for it at that moment (never beside a converge of the VM in
// another process).
func (t *Target) SetGuard(g worker.GuardFunc) { t.guard = g }

// Resync repairs drift (runtime.resync_interval): every host vmglue applied
// is re-created when it was deleted by hand and set back when its
// attributes were changed (a host that is no longer vmglue's is left alone
// and counted as a conflict); every downtime it applied is scheduled again
// when it was removed; every file_sd file is rewritten from the entries.
func (t *Target) Resync(ctx context.Context, applied map[string]worker.Objects) error {
	var errs []error
	if t.ic != nil {
		vmKeys := make([]string, 0, len(applied))
		for k := range applied {
			vmKeys = append(vmKeys, k)
		}
		slices.Sort(vmKeys)
		for _, vk := range vmKeys {
			if err := ctx.Err(); err != nil {
				return err
			}
			repair := func(objs worker.Objects) error { return t.repairVM(ctx, vk, objs) }
			var err error
			if t.guard != nil {
				err = t.guard(ctx, vk, repair)
			} else {
				err = repair(applied[vk])
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("resync %s: %w", vk, err))
			}
		}
	}
	if t.sd != nil && t.isLoaded() {
		if err := t.sd.flush(t.sd.touchAll()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// repairVM makes the hosts and downtimes of objs exist as recorded.
func (t *Target) repairVM(ctx context.Context, vmKey string, objs worker.Objects) error {
	for k, v := range objs {
		if name, ok := strings.CutPrefix(k, hostPrefix); ok {
			if err := t.putHost(ctx, vmKey, name, v, v); err != nil {
				if errors.Is(err, worker.ErrConflict) {
					t.log.Warn().Str("vm", vmKey).Str("host", name).Err(err).Msg("resync: host is no longer vmglue's, left alone")
					continue
				}
				return err
			}
		}
	}
	for k, v := range objs {
		if name, ok := strings.CutPrefix(k, downtimePrefix); ok {
			if _, host := objs[hostPrefix+name]; !host {
				continue
			}
			if err := t.ensureDowntime(ctx, name, v); err != nil {
				return err
			}
		}
	}
	return nil
}
