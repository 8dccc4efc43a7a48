package monitor

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// BucketFileSD is the JetStream KV bucket of the file_sd entries, shared by
// every serve process: key "<job>.<base64url of the VM key>", value the
// entry's JSON, or empty once the VM left the job (a tombstone whose
// revision orders it after every earlier entry).
const BucketFileSD = "VMGLUE_MONITOR_FILESD"

// store is where Apply records entries. With JetStream (serve) it is the
// shared bucket, and every process renders its own copy of each file from
// it (RunBeside watches the bucket); without (unit tests) it is this
// process alone.
type store struct {
	kv  jetstream.KeyValue // nil: in memory only
	nc  *nats.Conn         // kv's connection, nil without kv
	rev atomic.Uint64      // revisions of the in-memory store
}

// openStore opens (or creates, with the replicas of the applied-objects
// bucket) the shared bucket. An existing bucket with fewer replicas than
// the applied-objects bucket is raised to them, as eventbus.Provision
// raises the others.
func openStore(ctx context.Context, js jetstream.JetStream) (*store, error) {
	if js == nil {
		return &store{}, nil
	}
	replicas := max(replicasOf(ctx, js, "KV_"+eventbus.BucketApplied), 1)
	kv, err := js.KeyValue(ctx, BucketFileSD)
	if errors.Is(err, jetstream.ErrBucketNotFound) || err == nil && replicasOf(ctx, js, "KV_"+BucketFileSD) < replicas {
		kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketFileSD,
			Description: "file_sd entries of the monitor worker", History: 1, Storage: jetstream.FileStorage, Replicas: replicas})
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", BucketFileSD, err)
	}
	return &store{kv: kv, nc: js.Conn()}, nil
}

// replicasOf returns the replicas of a stream, 0 when it cannot be read.
func replicasOf(ctx context.Context, js jetstream.JetStream, stream string) int {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return 0
	}
	return st.CachedInfo().Config.Replicas
}

func storeKey(job, vmKey string) string {
	return job + "." + base64.RawURLEncoding.EncodeToString([]byte(vmKey))
}

// put records a VM's entry of a job ("" once the VM left it) and returns
// its revision.
func (s *store) put(ctx context.Context, job, vmKey, entry string) (uint64, error) {
	if s.kv == nil {
		return s.rev.Add(1), nil
	}
	ctx, cancel := worker.RequestContext(ctx) // a lease context has no timeout of its own
	defer cancel()
	rev, err := s.kv.Put(ctx, storeKey(job, vmKey), []byte(entry))
	if err != nil {
		return 0, fmt.Errorf("record file_sd entry: %w", err)
	}
	return rev, nil
}

// applyTargets records the file_sd entries of req and writes the files
// before it returns.
func (t *Target) applyTargets(ctx context.Context, req worker.Request, res worker.Objects) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-t.loaded:
	case <-ctx.Done():
		return ctx.Err()
	}
	var gen uint64
	for k := range req.Have {
		if _, ok := req.Want[k]; ok || !strings.HasPrefix(k, filesdPrefix) {
			continue
		}
		job := strings.TrimPrefix(k, filesdPrefix)
		rev, err := t.store.put(ctx, job, req.VM.Key(), "")
		if err != nil {
			return err
		}
		gen = max(gen, t.sd.set(job, req.VM.Key(), "", rev))
		delete(res, k)
	}
	for k, v := range req.Want {
		if !strings.HasPrefix(k, filesdPrefix) {
			continue
		}
		job := strings.TrimPrefix(k, filesdPrefix)
		rev, err := t.store.put(ctx, job, req.VM.Key(), v)
		if err != nil {
			return err
		}
		gen = max(gen, t.sd.set(job, req.VM.Key(), v, rev))
		res[k] = v
	}
	if err := t.sd.flush(gen); err != nil {
		return err
	}
	return ctx.Err()
}

// RunBeside watches the shared bucket (with JetStream) and renders the
// files of every entry, this process's and the others', until ctx ends.
// Apply waits until the bucket's contents are loaded, so that a file is
// never written with only part of it.
//
// With Icinga it also probes the API every ProbeInterval, so that
// vmglue_monitor_icinga_up tells when Icinga is unreachable even while no
// VM changes.
func (t *Target) RunBeside(ctx context.Context, _ *worker.Runner) {
	var wg sync.WaitGroup
	if t.ic != nil {
		wg.Go(func() { t.probe(ctx) })
	}
	if t.store != nil && t.store.kv != nil {
		wg.Go(func() { t.follow(ctx) })
	}
	wg.Wait()
}

// ProbeInterval is how often RunBeside probes the Icinga API.
const ProbeInterval = 30 * time.Second

// probe asks Icinga for a host that never exists (a query the worker's
// permissions allow): any answer means up.
func (t *Target) probe(ctx context.Context) {
	tick := time.NewTicker(ProbeInterval)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, t.cfg.Icinga.Timeout)
		_, err := t.ic.getHost(pctx, "vmglue-probe")
		cancel()
		if err != nil && !errors.Is(err, errNotFound) && ctx.Err() == nil {
			t.log.Warn().Err(err).Msg("icinga api unreachable")
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (t *Target) isLoaded() bool {
	select {
	case <-t.loaded:
		return true
	default:
		return false
	}
}
