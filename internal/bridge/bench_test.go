package bridge

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/testenv"
)

// BenchmarkBridge: b.N versioned notifications, published onto a real
// RabbitMQ as Nova's notifier does, wait in the bridge's queue; the timer
// runs from the bridge's start until JetStream acknowledged the last event.
// `make bench-bridge` prints notifications/s.
func BenchmarkBridge(b *testing.B) {
	rmq := testenv.StartRabbitMQ(b, testenv.RabbitMQOptions{})
	ns := natstest.Start(b)
	cfg := testConfig(b, rmq.URL, "bench")
	cfg.Formats = []string{"versioned"}
	cfg.AMQP.Prefetch = DefaultPrefetch
	// A first run declares and binds the durable queue.
	runBridge(b, ns.URL, cfg, 0)
	n := newNova(b, rmq.URL)
	t0 := time.Now()
	confirms := make([]*amqp.DeferredConfirmation, 0, b.N)
	for i := 0; i < b.N; i++ {
		body := notification(b, "instance.create.end", uuidN(i), fmt.Sprintf("bench-%d", i), t0, "active")
		c, err := n.ch.PublishWithDeferredConfirmWithContext(context.Background(), "nova", "versioned_notifications.info",
			false, false, amqp.Publishing{ContentType: "application/json", Body: body})
		if err != nil {
			b.Fatal(err)
		}
		confirms = append(confirms, c)
	}
	for _, c := range confirms {
		if !c.Wait() {
			b.Fatal("publish not confirmed")
		}
	}
	b.ResetTimer()
	start := time.Now()
	runBridge(b, ns.URL, cfg, b.N)
	d := time.Since(start)
	b.StopTimer()
	rate := float64(b.N) / d.Seconds()
	b.ReportMetric(rate, "notifications/s")
	fmt.Printf("vmglue bridge openstack: %d notifications from RabbitMQ into JetStream in %s: %.0f notifications/s (prefetch %d)\n",
		b.N, d.Round(time.Millisecond), rate, cfg.AMQP.Prefetch)
}

// runBridge runs a bridge until it published want events, then stops it.
func runBridge(b *testing.B, natsURL string, cfg Config, want int) {
	m := NewMetrics(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- RunApp(ctx, AppOptions{Config: cfg, NATS: eventbus.ConnOptions{URL: natsURL}, Metrics: m,
			Ready: func(string) { close(ready) }}, zerolog.Nop())
	}()
	<-ready
	testenv.WaitFor(b, 10*time.Minute, fmt.Sprintf("%d events", want), func() bool { return int(m.Count(ResultPublished)) >= want })
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
