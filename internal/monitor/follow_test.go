package monitor

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// The bucket watch's consumer stops delivering while this process's
// connection stays up (as when the node holding it goes: seen on a 3-node
// cluster, where both serves' files lagged ~20 s until the ordered
// consumer noticed its missing heartbeats). follow sees the watch stall
// behind the bucket and reads it again: the file follows within a few
// checks. Real nats-server; the consumer is paused through the JetStream
// API (a deleted one is recreated at once), the one thing done by hand.
func TestFollowRestartsAStalledWatch(t *testing.T) {
	old := watchCheck
	watchCheck = 300 * time.Millisecond
	t.Cleanup(func() { watchCheck = old })

	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.URL)
	cfg := Config{FileSD: &FileSDConfig{Dir: t.TempDir(), Jobs: []Job{{Name: "node", Port: 9100}}}}
	tg, err := New(cfg, worker.Deps{Log: zerolog.Nop(), JS: js})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); tg.RunBeside(ctx, nil) }()
	t.Cleanup(func() { cancel(); <-ran }) // before watchCheck is restored
	// put writes a VM's entry to the bucket only, as another serve
	// process does: this one's file has it once its watch delivered it.
	put := func(id, ip string) {
		vm := testVM("running", "vm"+id)
		vm.ID, vm.NICs = id, []eventbus.NIC{{IP: ip}}
		want, _ := tg.Desired(vm)
		if _, err := tg.store.put(ctx, "node", vm.Key(), want["file_sd/node"]); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(cfg.FileSD.Dir, "node.json")
	has := func(n int) func() bool {
		return func() bool { e, err := ReadFile(file); return err == nil && len(e) == n }
	}
	put("1", "127.0.0.1")
	testenv.WaitFor(t, 10*time.Second, "the first VM in the file", has(1))

	st, err := js.Stream(ctx, "KV_"+BucketFileSD)
	if err != nil {
		t.Fatal(err)
	}
	names := st.ConsumerNames(ctx)
	var paused int
	for n := range names.Name() {
		if _, err := js.PauseConsumer(ctx, "KV_"+BucketFileSD, n, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		paused++
	}
	if paused == 0 {
		t.Fatal("no consumer behind the bucket watch: the test shows nothing")
	}
	began := time.Now()
	put("2", "127.0.0.2")
	testenv.WaitFor(t, 5*time.Second, "the second VM in the file after the watch's consumer stopped delivering", has(2))
	t.Logf("file followed %s after the write", time.Since(began).Round(time.Millisecond))
}
