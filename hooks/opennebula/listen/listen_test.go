package listen_test

// The OpenNebula side of these tests is onedtest: oned cannot be installed
// here, so a ZeroMQ PUB socket on loopback sends exactly what one_hm sends
// (two frames per key, the keys as one_hm builds them with their trailing
// space, the base64 HOOK_MESSAGE without line breaks), built from the real
// VM documents of the shared corpus ($VMGLUE_CORPUS/opennebula). NATS is a
// real embedded nats-server; the delivery is hooks/delivery's Publisher.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/hooks/delivery"
	"github.com/vmglue/vmglue/hooks/opennebula"
	"github.com/vmglue/vmglue/hooks/opennebula/listen"
	"github.com/vmglue/vmglue/hooks/opennebula/onedtest"
	"github.com/vmglue/vmglue/internal/hookcmd"
)

// startAll starts NATS, the one_hm stand-in and a listener without a
// sweep, subscribed.
func startAll(t *testing.T) (*natstest.Server, *onedtest.Oned, *running) {
	t.Helper()
	srv := natstest.Start(t)
	oned := onedtest.Start(t)
	l := startListener(t, oned.Endpoint, openPublisher(t, srv.URL, t.TempDir()), nil)
	oned.WaitSubscribed(t, opennebula.StateKeyPrefix)
	return srv, oned, l
}

func eventOf(doc []byte) (eventbus.Event, error) {
	vm, err := opennebula.ParseVM(doc, "one")
	if err != nil {
		return eventbus.Event{}, err
	}
	return eventbus.NewEvent(vm)
}

// TestListenCorpus: every real VM document of the corpus, sent as one_hm
// sends it (both keys of each change), is stored once, with the event the
// hook's parser makes of the same document and a Seen time.
func TestListenCorpus(t *testing.T) {
	docs := corpusDocs(t)
	srv, oned, l := startAll(t)

	var want []string
	for name, doc := range docs {
		hook, err := opennebula.ParseHookInput([]byte(base64.StdEncoding.EncodeToString(doc)+" running"), nil, "one", nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want = append(want, hook.ID)
		if err := oned.Publish(doc); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every document stored", func() bool { return len(natstest.StoredIDs(t, srv.URL)) >= len(docs) })
	got := natstest.StoredIDs(t, srv.URL)
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("stored %v\nwant (the hook's ids) %v", got, want)
	}
	_, js := natstest.Connect(t, srv.URL)
	for _, ev := range natstest.Events(t, js) {
		if ev.Data.Version.Seen == 0 {
			t.Errorf("%s: no version.seen", ev.ID)
		}
	}
	// The counter moves once Publish returns, which can be just after the
	// stream stored the event.
	waitFor(t, "published counter", func() bool { return l.metrics.Messages("published") >= float64(len(docs)) })
	if n := l.metrics.Messages("published"); n != float64(len(docs)) {
		t.Errorf("published %v, want %d (the EVENT VM twin keys are not subscribed)", n, len(docs))
	}
}

// TestListenMalformed: messages that cannot be read are counted and
// skipped; the listener goes on with the next one.
func TestListenMalformed(t *testing.T) {
	docs := corpusDocs(t)
	doc := docs["vm-poweroff-1nic-snapshot.xml"]
	keys, frame, err := onedtest.Message(doc)
	if err != nil {
		t.Fatal(err)
	}
	key := keys[1] // EVENT STATE VM/POWEROFF/LCM_INIT/621
	b64 := func(s string) []byte { return []byte(base64.StdEncoding.EncodeToString([]byte(s))) }
	tests := []struct {
		name  string
		key   string
		frame []byte
	}{
		{"bad base64", key, []byte("not base64!")},
		{"base64 with a line break", key, append(bytes.Clone(frame[:76]), append([]byte("\n"), frame[76:]...)...)},
		{"bad XML", key, b64("<HOOK_MESSAGE><HOOK_TYPE>STATE")},
		{"not a HOOK_MESSAGE", key, b64(string(onedtest.Compact(doc)))},
		{"a HOST message under a VM key", key, b64("<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>HOST</HOOK_OBJECT>" +
			"<STATE>ERROR</STATE><RESOURCE_ID>621</RESOURCE_ID><HOST><ID>621</ID></HOST></HOOK_MESSAGE>")},
		{"an API message", key, b64("<HOOK_MESSAGE><HOOK_TYPE>API</HOOK_TYPE><CALL>one.vm.allocate</CALL></HOOK_MESSAGE>")},
		{"key of another VM", strings.Replace(key, "/621 ", "/622 ", 1), frame},
		{"key without id", opennebula.StateKeyPrefix + "POWEROFF/LCM_INIT/ ", frame},
		{"state message without VM", key, b64("<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>VM</HOOK_OBJECT>" +
			"<RESOURCE_ID>621</RESOURCE_ID></HOOK_MESSAGE>")},
	}
	srv, oned, l := startAll(t)
	for _, tt := range tests {
		if err := oned.Send(tt.key, tt.frame); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
	}
	// One frame only: a message one_hm never sends.
	if err := oned.Send(key, nil); err != nil {
		t.Fatal(err)
	}
	if err := oned.Publish(doc); err != nil { // then a good one
		t.Fatal(err)
	}
	waitFor(t, "the good message", func() bool { return l.metrics.Messages("published") == 1 })
	if got, want := l.metrics.Messages("malformed"), float64(len(tests)+1); got != want {
		t.Fatalf("malformed %v, want %v", got, want)
	}
	want, _ := eventOf(doc)
	if ids := natstest.StoredIDs(t, srv.URL); len(ids) != 1 || ids[0] != want.ID {
		t.Fatalf("stored %v, want only %s", ids, want.ID)
	}
}

// TestListenRestartSweeps: events keep coming while the listener is
// stopped and started again; the sweep on its start publishes what the
// stream lost meanwhile, and oned restarting (a reconnect) sweeps again.
func TestListenRestartSweeps(t *testing.T) {
	base := corpusDocs(t)["vm-undeployed-1nic-labels.xml"]
	srv := natstest.Start(t)
	oned := onedtest.Start(t)
	p := openPublisher(t, srv.URL, t.TempDir())
	var c cloud
	sw := &sweeper{cloud: &c, pub: p}

	const total = 300
	var sent atomic.Int64
	send := func(from, to int) { // VM i, one state change each, as oned does it
		for i := from; i < to; i++ {
			doc := variant(base, 1000+i, 1_700_000_000+int64(i))
			c.set(i, doc)
			if err := oned.Publish(doc); err != nil {
				t.Error(err)
				return
			}
			sent.Add(1)
			time.Sleep(time.Millisecond)
		}
	}
	first := startListener(t, oned.Endpoint, p, sw)
	oned.WaitSubscribed(t, opennebula.StateKeyPrefix)
	waitFor(t, "the start sweep", func() bool { return sw.Calls() == 1 })
	done := make(chan struct{})
	go func() { defer close(done); send(0, total) }()
	waitFor(t, "events through the first listener", func() bool { return first.metrics.Messages("published") >= 20 })
	first.stop(t)
	away := sent.Load()
	waitFor(t, "events sent while the listener is away", func() bool { return sent.Load() >= away+30 })
	second := startListener(t, oned.Endpoint, p, sw)
	<-done
	waitFor(t, "every VM stored", func() bool { return len(natstest.StoredIDs(t, srv.URL)) >= total })
	if n := len(natstest.StoredIDs(t, srv.URL)); n != total {
		t.Fatalf("%d events stored, want %d", n, total)
	}
	if sw.Calls() < 2 {
		t.Fatalf("sweeps %d, want one per start", sw.Calls())
	}
	streamed := first.metrics.Messages("published") + first.metrics.Messages("duplicate") +
		second.metrics.Messages("published") + second.metrics.Messages("duplicate")
	if streamed >= total {
		t.Fatalf("the listeners read %v of %d messages: nothing was missed, the test proves nothing", streamed, total)
	}
	t.Logf("stream gave %v of %d events, the sweeps the %v others", streamed, total, total-streamed)

	// oned restarts on the same port: the listener reconnects and sweeps.
	calls := sw.Calls()
	oned.Close()
	oned = onedtest.StartAt(t, oned.Endpoint)
	oned.WaitSubscribed(t, opennebula.StateKeyPrefix)
	waitFor(t, "the reconnect sweep", func() bool { return sw.Calls() > calls })
	if n := second.metrics.Connects(); n != 2 {
		t.Fatalf("connects %v, want 2", n)
	}
	doc := variant(base, 5000, 1_800_000_000)
	if err := oned.Publish(doc); err != nil {
		t.Fatal(err)
	}
	ev, _ := eventOf(doc)
	waitFor(t, "an event after the reconnect", func() bool { return slices.Contains(natstest.StoredIDs(t, srv.URL), ev.ID) })
}

// TestListenNATSDown: while NATS is down the listener's events are spooled,
// and sent in order once it is up.
func TestListenNATSDown(t *testing.T) {
	base := corpusDocs(t)["vm-poweroff-1nic-snapshot.xml"]
	addr := natstest.FreeAddr(t)
	dir := filepath.Join(t.TempDir(), "spool")
	oned := onedtest.Start(t)
	l := startListener(t, oned.Endpoint, openPublisher(t, "nats://"+addr, dir), nil)
	oned.WaitSubscribed(t, opennebula.StateKeyPrefix)
	const n = 50
	var want []string
	for i := range n {
		doc := variant(base, 2000+i, 1_700_000_000+int64(i))
		ev, _ := eventOf(doc)
		want = append(want, ev.ID)
		if err := oned.Publish(doc); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every event spooled", func() bool { return l.metrics.Messages("spooled") == n })
	if got := spooled(t, dir); got != n {
		t.Fatalf("%d in the spool, want %d", got, n)
	}
	srv := natstest.StartIn(t, t.TempDir(), addr)
	waitFor(t, "the spool sent", func() bool { return spooled(t, dir) == 0 })
	if got := natstest.StoredIDs(t, srv.URL); !slices.Equal(got, want) {
		t.Fatalf("stored %d events %v\nwant in this order %v", len(got), got, want)
	}
	if l.metrics.Messages("lost") != 0 {
		t.Fatal("lost events")
	}
}

// TestListenBesideHook: the hook (HEM's pretty-printed $TEMPLATE) and the
// listener (oned's compact message) fed the same state changes, in either
// order, store one event per change; both protect the secrets alike (the
// challenge as a MAC with the same key, a password redacted).
func TestListenBesideHook(t *testing.T) {
	docs := corpusDocs(t)
	keyFile := filepath.Join(t.TempDir(), "challenge.key")
	if err := os.WriteFile(keyFile, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lc := listen.Config{ChallengeKeyFile: keyFile}
	lc.SetDefaults()
	srv := natstest.Start(t)
	oned := onedtest.Start(t)
	l := startListenerSec(t, oned.Endpoint, openPublisher(t, srv.URL, t.TempDir()), nil, lc.Secrets(nil))
	oned.WaitSubscribed(t, opennebula.StateKeyPrefix)
	hook := func(doc []byte) {
		t.Helper()
		var stderr bytes.Buffer
		o := hookcmd.Options{URL: srv.URL, Cloud: "one", SpoolDir: t.TempDir(), ChallengeKeyFile: keyFile}
		in := strings.NewReader(base64.StdEncoding.EncodeToString(doc) + " word")
		if code := hookcmd.Run(context.Background(), o, in, nil, &stderr); code != 0 {
			t.Fatalf("hook: exit %d: %s", code, stderr.String())
		}
	}
	listener := func(doc []byte, outcomes float64) {
		t.Helper()
		if err := oned.Publish(doc); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the listener's delivery", func() bool {
			return l.metrics.Messages("published")+l.metrics.Messages("duplicate") == outcomes
		})
	}
	secrets := []byte("<PUPPET_CHALLENGE>chal-s3cret</PUPPET_CHALLENGE><DB_PASSWORD>pw-s3cret</DB_PASSWORD></USER_TEMPLATE>")
	changes, i, withSecrets := 0, 0, 0
	for _, doc := range docs {
		if bytes.Contains(doc, []byte("</USER_TEMPLATE>")) {
			doc = bytes.Replace(doc, []byte("</USER_TEMPLATE>"), secrets, 1)
			withSecrets++
		}
		hook(doc) // the hook first, then the listener
		changes++
		listener(doc, float64(changes))
		next := variant(doc, 3000+i, 1_750_000_000+int64(i)) // the listener first, then the hook
		i++
		changes++
		listener(next, float64(changes))
		hook(next)
	}
	if withSecrets == 0 {
		t.Fatal("no corpus document with a USER_TEMPLATE: the secrets were not tested")
	}
	_, js := natstest.Connect(t, srv.URL)
	evs := natstest.Events(t, js)
	if len(evs) != changes {
		t.Fatalf("%d events stored for %d changes", len(evs), changes)
	}
	macs := 0
	for _, ev := range evs {
		b, _ := json.Marshal(ev)
		if bytes.Contains(b, []byte("s3cret")) {
			t.Fatalf("a secret in clear text on the bus: %s", b)
		}
		if strings.HasPrefix(ev.Data.Attributes["PUPPET_CHALLENGE"], eventbus.ChallengePrefix) {
			macs++
		}
	}
	if macs != 2*withSecrets {
		t.Fatalf("%d challenges stored as a MAC, want %d", macs, 2*withSecrets)
	}
	if d := l.metrics.Messages("duplicate"); d != float64(len(docs)) {
		t.Fatalf("listener duplicates %v, want %d (the changes the hook stored first)", d, len(docs))
	}
}

// windows is the real Publisher, counting the events of each PublishAll.
type windows struct {
	*delivery.Publisher
	mu    sync.Mutex
	sizes []int
}

func (w *windows) PublishAll(ctx context.Context, evs []*eventbus.Event) []delivery.Result {
	w.mu.Lock()
	w.sizes = append(w.sizes, len(evs))
	w.mu.Unlock()
	return w.Publisher.PublishAll(ctx, evs)
}

// TestListenBurst: a burst sent back to back as one_hm sends it (200 VMs,
// five changes each, and one malformed message among them) goes out in
// ack windows of several events: every change is stored once, in the order
// oned sent it, and the malformed message is counted and skipped without
// taking its window's events with it.
func TestListenBurst(t *testing.T) {
	base := corpusDocs(t)["vm-undeployed-1nic-labels.xml"]
	srv := natstest.Start(t)
	oned := onedtest.Start(t)
	w := &windows{Publisher: openPublisher(t, srv.URL, t.TempDir())}
	l := startListener(t, oned.Endpoint, w, nil)
	oned.WaitSubscribed(t, opennebula.StateKeyPrefix)
	keys, _, err := onedtest.Message(base)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for poll := range 5 {
		for vm := range 200 {
			doc := variant(base, 2000+vm, 1_700_000_000+int64(poll))
			ev, err := eventOf(doc)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, ev.ID)
			if err := oned.Publish(doc); err != nil {
				t.Fatal(err)
			}
			if poll == 2 && vm == 100 {
				if err := oned.Send(keys[1], []byte("not base64!")); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	waitFor(t, "every change stored", func() bool { return len(natstest.StoredIDs(t, srv.URL)) >= len(want) })
	if got := natstest.StoredIDs(t, srv.URL); !slices.Equal(got, want) {
		t.Fatalf("stored %d events, want the %d sent, in their order", len(got), len(want))
	}
	waitFor(t, "published counter", func() bool { return l.metrics.Messages("published") >= float64(len(want)) })
	if n, m := l.metrics.Messages("published"), l.metrics.Messages("malformed"); n != float64(len(want)) || m != 1 {
		t.Fatalf("published %v, malformed %v: want %d and 1", n, m, len(want))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if slices.Max(w.sizes) < 2 {
		t.Fatalf("%d windows of one event each: the burst was sent one round trip at a time", len(w.sizes))
	}
	t.Logf("%d events in %d ack windows (largest %d)", len(want), len(w.sizes), slices.Max(w.sizes))
}
