package bridge

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/hooks/openstack"
	"github.com/vmglue/vmglue/hooks/spool"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// running is one bridge started by a test.
type running struct {
	metrics *Metrics
	logs    *testenv.LogBuffer
	cancel  context.CancelFunc
	done    chan error
}

// testConfig is a bridge on queue (one per test: they share a node).
func testConfig(t testing.TB, amqpURL, queue string) Config {
	c := Config{Cloud: "ostest", AMQP: AMQPConfig{URLs: []string{amqpURL}, Queue: queue, Prefetch: 16}, SpoolDir: t.TempDir()}
	c.SetDefaults()
	return c
}

// startBridge runs the bridge until the test ends and waits until it
// consumes. Its log is printed when the test fails, and checked for the
// context's token whatever happens.
func startBridge(t *testing.T, natsURL string, cfg Config) *running {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := &running{metrics: NewMetrics(nil), logs: &testenv.LogBuffer{}, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	ready := make(chan struct{})
	log := zerolog.New(r.logs).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	go func() {
		r.done <- RunApp(ctx, AppOptions{Config: cfg, NATS: eventbus.ConnOptions{URL: natsURL}, Metrics: r.metrics,
			Ready: func(string) { close(ready) }}, log)
	}()
	t.Cleanup(func() {
		r.stop(t)
		if strings.Contains(r.logs.String(), contextToken) {
			t.Error("the bridge logged the message context's token")
		}
		if t.Failed() {
			lines := strings.Split(strings.TrimSpace(r.logs.String()), "\n")
			t.Logf("bridge log (last %d lines):\n%s", min(len(lines), 60), strings.Join(lines[max(0, len(lines)-60):], "\n"))
		}
	})
	select {
	case <-ready:
	case err := <-r.done:
		t.Fatalf("bridge exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("bridge not consuming after 30s")
	}
	return r
}

func (r *running) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("bridge: %v", err)
	}
	r.cancel = nil
}

// queueDepth returns the messages waiting in queue and its consumers.
func queueDepth(t *testing.T, url, queue string) (int, int) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("inspect queue %s: %v", queue, err)
	}
	return q.Messages, q.Consumers
}

// stored returns the events of the stream, keyed by id.
func stored(t *testing.T, js jetstream.JetStream) map[string]eventbus.Event {
	t.Helper()
	out := map[string]eventbus.Event{}
	for _, e := range natstest.Events(t, js) {
		out[e.ID] = e
	}
	return out
}

func TestBridge(t *testing.T) {
	rmq := testenv.StartRabbitMQ(t, testenv.RabbitMQOptions{})
	t.Run("PublishAndDedup", func(t *testing.T) { testPublishAndDedup(t, rmq) })
	t.Run("PoisonDeadLettered", func(t *testing.T) { testPoison(t, rmq) })
	t.Run("NATSDown", func(t *testing.T) { testNATSDown(t, rmq) })
	t.Run("RabbitMQRestart", func(t *testing.T) { testRabbitRestart(t, rmq) })
}

// Every notification becomes one event; the same notification delivered
// twice (Nova's at-least-once retry, a requeue) is stored once; a
// notification vmglue does not map is acked and counted.
func testPublishAndDedup(t *testing.T, rmq *testenv.RabbitMQ) {
	ns := natstest.Start(t)
	_, js := natstest.Connect(t, ns.URL)
	b := startBridge(t, ns.URL, testConfig(t, rmq.URL, "t-dedup"))
	n := newNova(t, rmq.URL)
	t0 := time.Now()
	for i := 0; i < 20; i++ {
		n.send("versioned_notifications.info", notification(t, "instance.create.end", uuidN(i), fmt.Sprintf("m-%d", i), t0, "active"))
	}
	n.send("versioned_notifications.info", notification(t, "instance.create.end", uuidN(3), "m-3", t0, "active"))
	n.send("versioned_notifications.info", notification(t, "instance.exists", uuidN(1), "m-x", t0, "active"))
	testenv.WaitFor(t, 30*time.Second, "21 published or duplicate, 1 ignored", func() bool {
		return b.metrics.Count(ResultPublished)+b.metrics.Count(ResultDuplicate) == 21 && b.metrics.Count(ResultIgnored) == 1
	})
	evs := stored(t, js)
	if len(evs) != 20 || b.metrics.Count(ResultDuplicate) != 1 {
		t.Fatalf("%d events stored, %v duplicates; want 20 and 1", len(evs), b.metrics.Count(ResultDuplicate))
	}
	ev, ok := evs["ostest-"+uuidN(3)+"-running-m-3"]
	if !ok {
		t.Fatalf("no event with the message_id in its id among %d", len(evs))
	}
	if ev.Source != "openstack://ostest" || ev.Data.CloudType != openstack.CloudType || ev.Data.NICs[0].IP != "192.0.2.10" {
		t.Errorf("event %+v", ev)
	}
	if m, _ := queueDepth(t, rmq.URL, "t-dedup"); m != 0 {
		t.Errorf("%d messages left in the queue", m)
	}
}

// A message that cannot be decoded goes to the dead-letter stream with its
// reason, without the context, and the queue moves on.
func testPoison(t *testing.T, rmq *testenv.RabbitMQ) {
	ns := natstest.Start(t)
	_, js := natstest.Connect(t, ns.URL)
	b := startBridge(t, ns.URL, testConfig(t, rmq.URL, "t-poison"))
	n := newNova(t, rmq.URL)
	n.send("notifications.info", []byte(`{"oslo.version": "2.0", "oslo.message": "{\"_context_auth_token\": \"`+contextToken))
	n.send("versioned_notifications.info", []byte(`{"oslo.version":"9.9","oslo.message":"{\"_context_auth_token\":\"`+contextToken+`\"}"}`))
	n.send("versioned_notifications.error", notification(t, "instance.create.error", uuidN(7), "m-7", time.Now(), "error"))
	testenv.WaitFor(t, 30*time.Second, "2 dead letters and 1 event", func() bool {
		return b.metrics.Count(ResultDeadLetter) == 2 && b.metrics.Count(ResultPublished) == 1
	})
	dls, err := worker.ListDeadLetters(context.Background(), js, DLQWorker)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dls))
	}
	for _, dl := range dls {
		if dl.Reason != ReasonPoison || !strings.Contains(dl.Error, "invalid notification") {
			t.Errorf("dead letter reason %q error %q", dl.Reason, dl.Error)
		}
		if strings.Contains(string(dl.Event), contextToken) || strings.Contains(dl.Error, contextToken) {
			t.Errorf("dead letter holds the context token: %s", dl.Event)
		}
	}
	if evs := stored(t, js); len(evs) != 1 {
		t.Fatalf("%d events, want the failed instance's", len(evs))
	}
	if m, _ := queueDepth(t, rmq.URL, "t-poison"); m != 0 {
		t.Errorf("%d messages left in the queue", m)
	}
}

// NATS is down while VMs boot: each notification's event goes to the
// spool before the notification is acknowledged, and every one arrives
// once NATS is back.
func testNATSDown(t *testing.T, rmq *testenv.RabbitMQ) {
	dir, listen := t.TempDir(), fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ns := natstest.StartIn(t, dir, listen)
	cfg := testConfig(t, rmq.URL, "t-natsdown")
	b := startBridge(t, ns.URL, cfg)
	n := newNova(t, rmq.URL)
	ns.Stop()
	const vms = 50
	t0 := time.Now()
	for i := 0; i < vms; i++ {
		n.send("versioned_notifications.info", notification(t, "instance.create.end", uuidN(100+i), fmt.Sprintf("nd-%d", i), t0, "active"))
	}
	testenv.WaitFor(t, 60*time.Second, "every event spooled", func() bool { return b.metrics.Count(ResultSpooled) == vms })
	if entries, err := spool.New(cfg.SpoolDir).List(); err != nil || len(entries) != vms {
		t.Fatalf("spool holds %d events (%v), want %d", len(entries), err, vms)
	}
	testenv.WaitFor(t, 10*time.Second, "queue drained", func() bool { m, _ := queueDepth(t, rmq.URL, "t-natsdown"); return m == 0 })
	ns2 := natstest.StartIn(t, dir, listen)
	_, js := natstest.Connect(t, ns2.URL)
	testenv.WaitFor(t, 60*time.Second, "every event after NATS returned", func() bool { return len(stored(t, js)) == vms })
	testenv.WaitFor(t, 10*time.Second, "spool empty", func() bool {
		entries, err := spool.New(cfg.SpoolDir).List()
		return err == nil && len(entries) == 0
	})
}

// RabbitMQ restarts: the bridge reconnects to the durable queue and nothing
// is lost, before or after.
func testRabbitRestart(t *testing.T, rmq *testenv.RabbitMQ) {
	ns := natstest.Start(t)
	_, js := natstest.Connect(t, ns.URL)
	cfg := testConfig(t, rmq.URL, "t-restart")
	b := startBridge(t, ns.URL, cfg)
	n := newNova(t, rmq.URL)
	t0 := time.Now()
	for i := 0; i < 10; i++ {
		n.send("versioned_notifications.info", notification(t, "instance.create.end", uuidN(200+i), fmt.Sprintf("rb-%d", i), t0, "active"))
	}
	testenv.WaitFor(t, 30*time.Second, "10 events", func() bool { return len(stored(t, js)) == 10 })
	rmq.Stop()
	rmq.Start(t)
	n = newNova(t, rmq.URL)
	testenv.WaitFor(t, 60*time.Second, "bridge reconnected", func() bool {
		_, consumers := queueDepth(t, rmq.URL, "t-restart")
		return consumers == 1
	})
	for i := 10; i < 20; i++ {
		n.send("versioned_notifications.info", notification(t, "instance.create.end", uuidN(200+i), fmt.Sprintf("rb-%d", i), t0, "active"))
	}
	testenv.WaitFor(t, 30*time.Second, "20 events", func() bool { return len(stored(t, js)) == 20 })
	if c := b.metrics.Connects(); c < 2 {
		t.Errorf("%v connects, want a reconnect", c)
	}
}
