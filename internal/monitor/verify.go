package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/internal/worker"
)

var _ worker.Verifier = (*Target)(nil)

// Verify reads back, without changing anything, every object of req.Have
// and req.Want. A host is vmglue's when its marker (vars.vmglue_owner,
// vars.vmglue_vm) names this installation and the VM: then it is present
// with its templates and the attributes vmglue writes (the recorded or
// wanted value when they match); a wanted host without that marker is
// foreign, and so is a wanted downtime of it. A downtime is present when
// vmglue's downtime with the wanted (or recorded) comment is on the host.
// A file_sd entry is present when the job's file on disk holds it, or an
// entry with the VM's cloud and vm_id labels (then with that entry's
// value); in a process that does not render the files (reconcile), when
// the shared bucket holds it. An unreachable Icinga is an error.
func (t *Target) Verify(ctx context.Context, req worker.Request) (worker.Readback, error) {
	rb := worker.Readback{Present: worker.Objects{}, Foreign: worker.Objects{}}
	keys := slices.Sorted(maps.Keys(req.Have))
	for k := range req.Want {
		if _, ok := req.Have[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	files := map[string][]Entry{} // job → its file, read once
	for _, k := range keys {
		var err error
		switch {
		case strings.HasPrefix(k, hostPrefix) && t.ic != nil:
			err = t.verifyHost(ctx, req, k, rb)
		case strings.HasPrefix(k, downtimePrefix) && t.ic != nil:
			err = t.verifyDowntime(ctx, req, k, rb)
		case strings.HasPrefix(k, filesdPrefix) && t.sd != nil:
			err = t.verifyEntry(ctx, req, k, files, rb)
		}
		if err != nil {
			return rb, fmt.Errorf("verify monitor of vm %s: %w", req.VM.Key(), err)
		}
	}
	return rb, nil
}

// ref is the value an object is compared with: the wanted one, else the
// recorded one.
func ref(req worker.Request, k string) string {
	if v, ok := req.Want[k]; ok {
		return v
	}
	return req.Have[k]
}

// ours reports whether a host carries the marker of this installation and
// the VM.
func (t *Target) ours(vmKey string, h *hostState) bool {
	return fmt.Sprint(h.Vars[ownerVar]) == t.owner && fmt.Sprint(h.Vars[vmVar]) == vmKey
}

// foreignHost describes a host that is not the VM's.
func foreignHost(h *hostState) string {
	return fmt.Sprintf("icinga host with vars.%s=%q, vars.%s=%q", ownerVar, clean(fmt.Sprint(h.Vars[ownerVar])),
		vmVar, clean(fmt.Sprint(h.Vars[vmVar])))
}

func (t *Target) verifyHost(ctx context.Context, req worker.Request, k string, rb worker.Readback) error {
	name := strings.TrimPrefix(k, hostPrefix)
	h, err := t.ic.getHost(ctx, name)
	if errors.Is(err, errNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !t.ours(req.VM.Key(), h) {
		if _, wanted := req.Want[k]; wanted {
			rb.Foreign[k] = foreignHost(h)
		}
		return nil
	}
	v := ref(req, k)
	ws, err := parseSpec(v)
	if err != nil {
		return worker.Permanent(fmt.Errorf("host %s: %w", name, err))
	}
	cur := currentAttrs(h, ws, req.Have[k])
	if slices.Equal(h.Templates, ws.Templates) && maps.Equal(cur, ws.Attrs) {
		rb.Present[k] = v
		return nil
	}
	rb.Present[k] = hostSpec{Templates: h.Templates, Attrs: cur}.value()
	return nil
}

func (t *Target) verifyDowntime(ctx context.Context, req worker.Request, k string, rb worker.Readback) error {
	name := strings.TrimPrefix(k, downtimePrefix)
	if _, foreign := rb.Foreign[hostPrefix+name]; foreign {
		if _, wanted := req.Want[k]; wanted {
			rb.Foreign[k] = "a downtime of a host vmglue does not own"
		}
		return nil
	}
	for _, c := range []string{req.Want[k], req.Have[k]} {
		if c == "" {
			continue
		}
		ok, err := t.ic.hasDowntime(ctx, name, c)
		if err != nil {
			return err
		}
		if ok {
			rb.Present[k] = c
			return nil
		}
	}
	return nil
}

// verifyEntry reads the job's file (once per Verify) and finds the VM's
// entry in it. A process that does not follow the bucket (the files are
// serve's: `vmglue reconcile` runs elsewhere) reads the bucket's entry.
func (t *Target) verifyEntry(ctx context.Context, req worker.Request, k string, files map[string][]Entry, rb worker.Readback) error {
	job := strings.TrimPrefix(k, filesdPrefix)
	if !t.isLoaded() {
		rctx, cancel := worker.RequestContext(ctx) // a lease context has no timeout of its own
		e, err := t.store.kv.Get(rctx, storeKey(job, req.VM.Key()))
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("read file_sd entry: %w", err)
		case len(e.Value()) > 0:
			rb.Present[k] = string(e.Value())
		}
		return nil
	}
	entries, ok := files[job]
	if !ok {
		var err error
		if entries, err = ReadFile(filepath.Join(t.sd.dir, job+".json")); err != nil {
			return err
		}
		files[job] = entries
	}
	v := ref(req, k)
	var found string
	for _, e := range entries {
		b, _ := json.Marshal(e)
		if string(b) == v || string(b) == req.Have[k] {
			rb.Present[k] = string(b)
			return ctx.Err()
		}
		if found == "" && e.Labels["cloud"] == clean(req.VM.Cloud) && e.Labels["vm_id"] == clean(req.VM.ID) {
			found = string(b)
		}
	}
	if found != "" {
		rb.Present[k] = found
	}
	return ctx.Err()
}

var _ worker.Surveyor = (*Target)(nil)

// Survey lists the Icinga hosts that carry this installation's marker
// (vars.vmglue_owner), with the VM each names (vars.vmglue_vm). Without
// Icinga there is nothing to survey: the file_sd files hold only entries
// of the shared bucket, which vmglue writes alone.
func (t *Target) Survey(ctx context.Context) ([]worker.Marked, error) {
	if t.ic == nil {
		return nil, nil
	}
	hosts, err := t.ic.markedHosts(ctx, t.owner)
	if err != nil {
		return nil, err
	}
	out := make([]worker.Marked, 0, len(hosts))
	for name, vm := range hosts {
		out = append(out, worker.Marked{VM: vm, Key: hostPrefix + name, Found: "icinga host " + clean(name)})
	}
	return out, nil
}
