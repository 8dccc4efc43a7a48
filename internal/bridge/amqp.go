package bridge

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/vmglue/vmglue/eventbus"
)

// dialer connects to the configured RabbitMQ nodes.
type dialer struct {
	cfg      AMQPConfig
	password string
	tls      *tls.Config
	next     int // index of the URL to try next
}

func newDialer(cfg AMQPConfig, password string) (*dialer, error) {
	d := &dialer{cfg: cfg, password: password}
	if cfg.CAFile != "" || cfg.CertFile != "" {
		d.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("bridge.openstack.amqp.ca_file: %w", err)
			}
			d.tls.RootCAs = x509.NewCertPool()
			if !d.tls.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("bridge.openstack.amqp.ca_file %s: no PEM certificate in it", cfg.CAFile)
			}
		}
		if cfg.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("bridge.openstack.amqp.cert_file: %w", err)
			}
			d.tls.Certificates = []tls.Certificate{cert}
		}
	}
	return d, nil
}

// dial connects to the next URL in turn.
func (d *dialer) dial() (*amqp.Connection, string, error) {
	raw := d.cfg.URLs[d.next%len(d.cfg.URLs)]
	d.next++
	shown := eventbus.RedactURL(raw)
	u, err := url.Parse(raw)
	if err != nil {
		return nil, shown, fmt.Errorf("parse amqp url %s: invalid", shown)
	}
	c := amqp.Config{
		Heartbeat:  10 * time.Second,
		Locale:     "en_US",
		Properties: amqp.Table{"connection_name": "vmglue bridge openstack"},
		Dial:       amqp.DefaultDial(5 * time.Second),
	}
	if u.Scheme == "amqps" {
		c.TLSClientConfig = d.tls
		if c.TLSClientConfig == nil {
			c.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	}
	if d.password != "" {
		c.SASL = []amqp.Authentication{&amqp.PlainAuth{Username: u.User.Username(), Password: d.password}}
	}
	conn, err := amqp.DialConfig(raw, c)
	if err != nil {
		return nil, shown, fmt.Errorf("connect to rabbitmq %s: %s", shown, redactErr(err, raw))
	}
	return conn, shown, nil
}

// redactErr is an error's text without the URL's password.
func redactErr(err error, raw string) string {
	msg := err.Error()
	if u, perr := url.Parse(raw); perr == nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "***")
		}
	}
	return msg
}

// setup declares the exchange as oslo.messaging does, the bridge's durable
// queue and its bindings, and starts consuming with manual acks.
func setup(ch *amqp.Channel, cfg AMQPConfig, keys []string) (<-chan amqp.Delivery, error) {
	if err := ch.Qos(cfg.Prefetch, 0, false); err != nil {
		return nil, fmt.Errorf("set prefetch: %w", err)
	}
	if err := ch.ExchangeDeclare(cfg.Exchange, amqp.ExchangeTopic, cfg.ExchangeDurable, false, false, false, nil); err != nil {
		return nil, fmt.Errorf("declare exchange %q (exchange_durable must match Nova's amqp_durable_queues): %w", cfg.Exchange, err)
	}
	if _, err := ch.QueueDeclare(cfg.Queue, true, false, false, false, nil); err != nil {
		return nil, fmt.Errorf("declare queue %q: %w", cfg.Queue, err)
	}
	for _, k := range keys {
		if err := ch.QueueBind(cfg.Queue, k, cfg.Exchange, false, nil); err != nil {
			return nil, fmt.Errorf("bind queue %q to %q with %q: %w", cfg.Queue, cfg.Exchange, k, err)
		}
	}
	d, err := ch.Consume(cfg.Queue, "vmglue-bridge-openstack", false, false, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("consume queue %q: %w", cfg.Queue, err)
	}
	return d, nil
}

// errConnectionLost ends one consuming session: reconnect.
var errConnectionLost = errors.New("rabbitmq connection lost")
