package delivery_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/hooks/delivery"
	"github.com/vmglue/vmglue/hooks/spool"
)

// event returns the event of VM id, running with one NIC.
func event(t *testing.T, id string) *eventbus.Event {
	t.Helper()
	ev, err := eventbus.NewEvent(eventbus.VM{Cloud: "one", CloudType: "opennebula", ID: id, Name: "web" + id,
		State: "ACTIVE", LCMState: "RUNNING", Kind: eventbus.KindRunning,
		NICs: []eventbus.NIC{{ID: "0", IP: "10.0.0." + id}}, Version: eventbus.Version{Seq: 1, Changed: 1e18}})
	if err != nil {
		t.Fatal(err)
	}
	return &ev
}

// waitFor polls cond until it holds, failing the test after 20s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func spooled(t *testing.T, dir string) int {
	t.Helper()
	es, err := spool.New(dir).List()
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// TestPublisherOutage runs a resident Publisher through two outages of a
// real nats-server: down at start, then stopped under it. Events are
// spooled while it is down, sent in order once it is back, and copies are
// dropped as duplicates.
func TestPublisherOutage(t *testing.T) {
	store, addr := t.TempDir(), natstest.FreeAddr(t)
	url := "nats://" + addr
	dir := filepath.Join(t.TempDir(), "spool")
	p, err := delivery.Open(delivery.Options{Conn: eventbus.ConnOptions{URL: url}, SpoolDir: dir,
		Timeout: 2 * time.Second, FlushInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("open with nats down: %v", err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	evs := []*eventbus.Event{event(t, "1"), event(t, "2"), event(t, "3"), event(t, "4")}
	publish := func(ev *eventbus.Event, want delivery.Outcome) {
		t.Helper()
		r := p.Publish(ctx, ev)
		if r.Outcome != want || !r.Outcome.Safe() {
			t.Fatalf("publish %s: %v (%v), want %v", ev.ID, r.Outcome, r.Err, want)
		}
		if want == delivery.Spooled && !errors.Is(r.Err, delivery.ErrNotConnected) {
			t.Fatalf("publish %s spooled because %v, want ErrNotConnected", ev.ID, r.Err)
		}
	}
	publish(evs[0], delivery.Spooled)
	publish(evs[1], delivery.Spooled)

	srv := natstest.StartIn(t, store, addr)
	waitFor(t, "the spool to be sent", func() bool { return spooled(t, dir) == 0 })
	publish(evs[2], delivery.Published)

	srv.Stop()
	waitFor(t, "the disconnect", func() bool { return !p.Connected() })
	publish(evs[3], delivery.Spooled)
	natstest.StartIn(t, store, addr)
	waitFor(t, "the spool to be sent again", func() bool { return spooled(t, dir) == 0 })
	publish(evs[0], delivery.Duplicate)

	got := natstest.StoredIDs(t, url)
	want := []string{evs[0].ID, evs[1].ID, evs[2].ID, evs[3].ID}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("stored %v, want %v in this order", got, want)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

// TestPublisherBehindSpool: an event published while older ones wait in
// the spool goes behind them, and a spooled copy of a stored event is
// dropped as a duplicate.
func TestPublisherBehindSpool(t *testing.T) {
	srv := natstest.Start(t)
	dir := filepath.Join(t.TempDir(), "spool")
	a, b, c := event(t, "1"), event(t, "2"), event(t, "3")
	o := delivery.Options{Conn: eventbus.ConnOptions{URL: srv.URL}, SpoolDir: dir}
	if r := delivery.Once(context.Background(), o, a); r.Outcome != delivery.Published {
		t.Fatalf("once: %v (%v)", r.Outcome, r.Err)
	}
	for _, ev := range []*eventbus.Event{a, b} { // a: a copy whose ack was lost
		if r := delivery.Keep(dir, ev, errors.New("test")); r.Outcome != delivery.Spooled {
			t.Fatalf("keep: %v (%v)", r.Outcome, r.SpoolErr)
		}
	}
	p, err := delivery.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	waitFor(t, "the connection", p.Connected)
	if r := p.Publish(context.Background(), c); r.Outcome != delivery.Published {
		t.Fatalf("publish: %v (%v)", r.Outcome, r.Err)
	}
	if got, want := natstest.StoredIDs(t, srv.URL), []string{a.ID, b.ID, c.ID}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("stored %v, want %v", got, want)
	}
	if n := spooled(t, dir); n != 0 {
		t.Fatalf("%d left in the spool", n)
	}
}

// TestOnce covers the one-shot delivery: a URL list publishes to the node
// that answers; NATS down spools; a spool that cannot be written loses
// the event and says why.
func TestOnce(t *testing.T) {
	srv := natstest.Start(t)
	down := "nats://" + natstest.FreeAddr(t)
	readOnly := filepath.Join(t.TempDir(), "ro")
	if err := os.WriteFile(readOnly, nil, 0o600); err != nil { // a file where the spool directory should be
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		url   string
		spool string
		want  delivery.Outcome
	}{
		{"first node down, second answers", down + "," + srv.URL, "", delivery.Published},
		{"only node down: spooled", down, "", delivery.Spooled},
		{"down and no spool: lost", down, readOnly, delivery.Lost},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.spool
			if dir == "" {
				dir = filepath.Join(t.TempDir(), "spool")
			}
			o := delivery.Options{Conn: eventbus.ConnOptions{URL: tt.url}, SpoolDir: dir, Timeout: 2 * time.Second}
			r := delivery.Once(context.Background(), o, event(t, string(rune('5'+i))))
			if r.Outcome != tt.want {
				t.Fatalf("outcome %v (err %v, spool %v), want %v", r.Outcome, r.Err, r.SpoolErr, tt.want)
			}
			if tt.want == delivery.Lost && (r.Err == nil || r.SpoolErr == nil || r.Outcome.Safe()) {
				t.Fatalf("lost without both reasons: %v / %v", r.Err, r.SpoolErr)
			}
		})
	}
}

// An event NATS refuses for good (over max_payload) is neither spooled as
// if a retry could help nor lost: both modes keep it in the quarantine and
// report Refused, and a Publisher goes on with the next event at once.
func TestRefusedQuarantined(t *testing.T) {
	srv := natstest.Start(t)
	huge := func(id string) *eventbus.Event {
		ev := event(t, id)
		ev.Data.Attributes = map[string]string{"BLOB": strings.Repeat("x", 2<<20)} // past NewEvent's bounds
		return ev
	}
	dir := filepath.Join(t.TempDir(), "spool")
	o := delivery.Options{Conn: eventbus.ConnOptions{URL: srv.URL}, SpoolDir: dir, Timeout: 5 * time.Second}
	if r := delivery.Once(context.Background(), o, huge("1")); r.Outcome != delivery.Refused || !r.Outcome.Safe() || !delivery.Permanent(r.Err) {
		t.Fatalf("Once: %v (%v), want refused", r.Outcome, r.Err)
	}
	p, err := delivery.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	waitFor(t, "publisher connected", p.Connected)
	if r := p.Publish(context.Background(), huge("2")); r.Outcome != delivery.Refused {
		t.Fatalf("Publisher: %v (%v), want refused", r.Outcome, r.Err)
	}
	ok := event(t, "3")
	if r := p.Publish(context.Background(), ok); r.Outcome != delivery.Published {
		t.Fatalf("next event: %v (%v), want published", r.Outcome, r.Err)
	}
	q, err := spool.New(dir).ListQuarantined()
	if err != nil || len(q) != 2 || spooled(t, dir) != 0 {
		t.Fatalf("quarantine %d (%v), spool %d: want 2 and 0", len(q), err, spooled(t, dir))
	}
	if ids := natstest.StoredIDs(t, srv.URL); len(ids) != 1 || ids[0] != ok.ID {
		t.Fatalf("stored %v, want only %s", ids, ok.ID)
	}
}

// PublishAll sends a window of events and awaits their acks together;
// each result is what Publish would have given, and the stream stores
// them in their order: a copy in the window is a duplicate, an event the
// bus refuses for good is quarantined without holding up the others, and
// events NATS cannot take (down, or no event stream) are spooled in order
// and sent in that order once it can.
func TestPublishAll(t *testing.T) {
	huge := event(t, "99")
	huge.Data.Attributes = map[string]string{"BLOB": strings.Repeat("x", 2<<20)}
	window := func(n int) []*eventbus.Event {
		var evs []*eventbus.Event
		for i := range n {
			evs = append(evs, event(t, strconv.Itoa(i+1)))
		}
		return evs
	}
	ids := func(evs []*eventbus.Event) []string {
		var out []string
		for _, ev := range evs {
			out = append(out, ev.ID)
		}
		return out
	}
	big := window(300)
	for _, tt := range []struct {
		name   string
		evs    []*eventbus.Event
		bus    string // "up", "down" (started after the window), "no stream"
		cancel bool   // the context is cancelled before (a source shutting down)
		want   []delivery.Outcome
		stored []string // in this order, once the spool is sent
	}{
		{name: "a window of 300 and a copy", bus: "up", evs: append(big[:300:300], big[4]),
			want: append(slices.Repeat([]delivery.Outcome{delivery.Published}, 300), delivery.Duplicate), stored: ids(big)},
		{name: "refused in the middle", bus: "up", evs: []*eventbus.Event{big[0], huge, big[1]},
			want: []delivery.Outcome{delivery.Published, delivery.Refused, delivery.Published}, stored: ids(big[:2])},
		{name: "nats down", bus: "down", evs: big[:5],
			want: slices.Repeat([]delivery.Outcome{delivery.Spooled}, 5), stored: ids(big[:5])},
		{name: "context cancelled", bus: "up", cancel: true, evs: big[:5],
			want: slices.Repeat([]delivery.Outcome{delivery.Spooled}, 5), stored: ids(big[:5])},
		{name: "no event stream", bus: "no stream", evs: big[:5],
			want: slices.Repeat([]delivery.Outcome{delivery.Spooled}, 5), stored: ids(big[:5])},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store, addr := t.TempDir(), natstest.FreeAddr(t)
			url := "nats://" + addr
			var srv *natstest.Server
			if tt.bus != "down" {
				srv = natstest.StartIn(t, store, addr)
			}
			if tt.bus == "no stream" {
				_, js := natstest.Connect(t, url)
				if err := js.DeleteStream(context.Background(), eventbus.StreamEvents); err != nil {
					t.Fatal(err)
				}
			}
			dir := filepath.Join(t.TempDir(), "spool")
			p, err := delivery.Open(delivery.Options{Conn: eventbus.ConnOptions{URL: url}, SpoolDir: dir,
				Timeout: 2 * time.Second, FlushInterval: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if srv != nil {
				waitFor(t, "the connection", p.Connected)
			}
			pctx, pcancel := context.WithCancel(context.Background())
			if tt.cancel {
				pcancel()
			}
			rs := p.PublishAll(pctx, tt.evs)
			pcancel()
			for i, r := range rs {
				if r.Outcome != tt.want[i] || !r.Outcome.Safe() {
					t.Fatalf("event %d: %v (%v), want %v", i, r.Outcome, r.Err, tt.want[i])
				}
			}
			if len(rs) != len(tt.want) {
				t.Fatalf("%d results, want %d", len(rs), len(tt.want))
			}
			switch tt.bus {
			case "down":
				natstest.StartIn(t, store, addr)
			case "no stream":
				_, js := natstest.Connect(t, url)
				if err := eventbus.Provision(context.Background(), js, eventbus.ProvisionOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			waitFor(t, "the spool to be sent", func() bool { return spooled(t, dir) == 0 })
			cancel()
			<-done
			if got := natstest.StoredIDs(t, url); !slices.Equal(got, tt.stored) {
				t.Fatalf("stored %d events %v, want %d in order", len(got), got, len(tt.stored))
			}
		})
	}
}
