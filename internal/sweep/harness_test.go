package sweep_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/hooks/opennebula/api"
	"github.com/vmglue/vmglue/hooks/opennebula/api/apitest"
	"github.com/vmglue/vmglue/internal/sweep"
	"github.com/vmglue/vmglue/internal/worker"
)

const (
	cloud   = "one"
	session = "oneadmin:sweep-test-password"
)

// env is a real embedded NATS with vmglue's streams and buckets, and the
// in-test oned (apitest: oned cannot be installed here) serving VMs.
type env struct {
	t      testing.TB
	url    string // of NATS
	js     jetstream.JetStream
	one    *apitest.Server
	client *api.Client
	// authFile holds the session the in-test oned accepts.
	authFile string
	merged   uint64 // last stream sequence merged into the snapshots
}

func newEnv(t testing.TB) *env { return newEnvPaged(t, 2) }

// newEnvPaged is newEnv with pageSize VMs per one.vmpool.infoextended call.
func newEnvPaged(t testing.TB, pageSize int) *env {
	t.Helper()
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.URL)
	one := apitest.Start(t, session)
	auth := filepath.Join(t.TempDir(), "one_auth")
	if err := os.WriteFile(auth, []byte(session), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := api.New(api.Options{Endpoint: one.URL, AuthFile: auth, PageSize: pageSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &env{t: t, url: s.URL, js: js, one: one, client: c, authFile: auth}
}

// corpus reads a document of $VMGLUE_CORPUS/opennebula.
func corpus(t testing.TB, name string) string { return apitest.CorpusDoc(t, name) }

// live are the corpus VMs that are not DONE, as oned would list them.
var live = []string{"vmpool-2vms-active-unknown-nics.xml", "vm-undeployed-1nic-labels.xml",
	"vm-poweroff-1nic-snapshot.xml", "vm-active-backup-1nic-6.10-docs.xml", "vm-pending-no-nic-hook-template-5.12-docs.xml"}

// liveIDs are their ids, in order.
var liveIDs = []string{"0", "1", "2", "595", "621", "800"}

// loadLive gives oned the live corpus VMs (and the DONE one, which it keeps).
func (e *env) loadLive() {
	e.t.Helper()
	for _, f := range append(live, "vm-done-vrouter-2nics.xml") {
		doc := corpus(e.t, f)
		var err error
		if strings.Contains(doc[:min(len(doc), 128)], "<VM_POOL") {
			err = e.one.SetPool(doc)
		} else {
			err = e.one.SetVM(doc)
		}
		if err != nil {
			e.t.Fatalf("%s: %v", f, err)
		}
	}
}

// sweeper is a new Sweeper, as after a restart: nothing is kept in memory.
func (e *env) sweeper(o sweep.Options, m *sweep.Metrics) *sweep.Sweeper {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := sweep.New(ctx, sweep.NewOpenNebula(cloud, e.client), e.js, sweep.JetStreamPublisher{JS: e.js}, o, m, zerolog.New(zerolog.NewTestWriter(e.t)))
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// run sweeps once and then merges the new events into the snapshots, as
// every worker of serve does first with each event it receives.
func (e *env) run(s *sweep.Sweeper, mode sweep.Mode) (sweep.Result, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // the bench's 10,000 VMs on a loaded machine
	defer cancel()
	r, err := s.Run(ctx, mode)
	e.merge()
	return r, err
}

// merge merges the events stored since the last merge into VMGLUE_VMS.
func (e *env) merge() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snaps := e.snapshots(ctx)
	evs := natstest.Events(e.t, e.js)
	for _, ev := range evs[min(int(e.merged), len(evs)):] {
		if _, err := snaps.Merge(ctx, &ev.Data); err != nil {
			e.t.Fatal(err)
		}
	}
	e.merged = uint64(len(evs))
}

// events returns the stored events.
func (e *env) events() []eventbus.Event { return natstest.Events(e.t, e.js) }

// snapshot returns vmglue's snapshot of a VM of the OpenNebula cloud (nil
// if none).
func (e *env) snapshot(id string) *eventbus.VM { return e.snapshotIn(cloud, id) }

// snapshotIn returns vmglue's snapshot of a VM of a cloud (nil if none).
func (e *env) snapshotIn(cloud, id string) *eventbus.VM {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	vm, _, err := e.snapshots(ctx).Get(ctx, cloud+"."+id)
	if err != nil {
		e.t.Fatal(err)
	}
	return vm
}

// absences returns the keys of VMGLUE_SWEEP.
func (e *env) absences() []string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := e.js.KeyValue(ctx, eventbus.BucketSweep)
	if err != nil {
		e.t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil && err != jetstream.ErrNoKeysFound {
		e.t.Fatal(err)
	}
	return keys
}

// snapshots opens VMGLUE_VMS as the workers do.
func (e *env) snapshots(ctx context.Context) *worker.Snapshots {
	e.t.Helper()
	snaps, err := worker.OpenSnapshots(ctx, e.js)
	if err != nil {
		e.t.Fatal(err)
	}
	return snaps
}
