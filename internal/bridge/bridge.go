package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/openstack"
)

// Options of one bridge.
type Options struct {
	Config Config
	// Password of the AMQP user (read by the caller from
	// amqp.password_file or amqp.password_env); empty: the URL's, if any.
	Password     string
	Publisher    Publisher
	DeadLetterer DeadLetterer
	// Secrets keeps secret metadata off the bus (zero: the defaults).
	Secrets eventbus.Secrets
	// Lookup completes events without addresses; nil turns it off.
	Lookup  Lookup
	Metrics *Metrics
	// Ready, when set, is called each time the bridge consumes (after
	// every reconnect).
	Ready func()
	// BackoffBase and BackoffMax bound the waits between retries of a
	// publish and between reconnects (defaults 200ms and 5s).
	BackoffBase, BackoffMax time.Duration
}

// Run consumes until ctx is done. It returns nil on shutdown, or an error
// that retrying cannot fix (a bad TLS file).
func Run(ctx context.Context, o Options, log zerolog.Logger) error {
	if o.BackoffBase <= 0 {
		o.BackoffBase = 200 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 5 * time.Second
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Publisher == nil || o.DeadLetterer == nil {
		return errors.New("bridge: a Publisher and a DeadLetterer are required")
	}
	d, err := newDialer(o.Config.AMQP, o.Password)
	if err != nil {
		return err
	}
	log = log.With().Str("component", "bridge").Str("cloud", o.Config.Cloud).Logger()
	h := &handler{
		opts: openstack.Options{Cloud: o.Config.Cloud, NameFrom: o.Config.Name, Secrets: o.Secrets},
		pub:  o.Publisher, dlq: o.DeadLetterer, lookup: o.Lookup, metrics: o.Metrics, log: log,
		backoffBase: o.BackoffBase, backoffMax: o.BackoffMax,
	}
	keys := o.Config.RoutingKeys()
	wait := o.BackoffBase
	for {
		started := time.Now()
		err := session(ctx, d, o, h, keys, log)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > time.Minute {
			wait = o.BackoffBase // it ran a while: a fresh failure
		}
		log.Warn().Err(err).Dur("retry_in", wait).Msg("rabbitmq: reconnecting")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, o.BackoffMax)
	}
}

// session is one connection: declare, consume, handle each delivery in
// order until the connection or ctx ends.
func session(ctx context.Context, d *dialer, o Options, h *handler, keys []string, log zerolog.Logger) error {
	conn, shown, err := d.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel on %s: %w", shown, err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	deliveries, err := setup(ch, o.Config.AMQP, keys)
	if err != nil {
		return fmt.Errorf("%s: %w", shown, err)
	}
	o.Metrics.connects.Inc()
	log.Info().Str("amqp", shown).Str("queue", o.Config.AMQP.Queue).Strs("routing_keys", keys).Msg("consuming nova notifications")
	if o.Ready != nil {
		o.Ready()
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err() // the unacknowledged deliveries go back to the queue
		case e := <-closed:
			if e != nil {
				return fmt.Errorf("%w: %s", errConnectionLost, e.Reason)
			}
			return errConnectionLost
		case m, ok := <-deliveries:
			if !ok {
				return errConnectionLost
			}
			if err := h.handle(ctx, m.RoutingKey, m.Body); err != nil {
				return err // ctx is done: leave the message unacknowledged
			}
			if err := m.Ack(false); err != nil {
				// The connection went: RabbitMQ redelivers the message, and
				// its event id makes the second copy a duplicate.
				return fmt.Errorf("%w: ack: %v", errConnectionLost, err)
			}
		}
	}
}
