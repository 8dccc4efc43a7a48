// Package bridge is `vmglue bridge openstack`: it consumes Nova's
// notifications from RabbitMQ and publishes them to JetStream as vmglue
// events, losing none.
//
// # Consuming
//
// The bridge declares its own durable queue (amqp.queue, default
// "vmglue-openstack"), bound to Nova's topic exchange (amqp.exchange,
// default "nova", declared as oslo.messaging declares it) with the routing
// keys <topic>.info and <topic>.error of each enabled format. It never
// consumes Nova's default queues (notifications.info, ...), where other
// consumers (Ceilometer, Designate) would take messages from it. RabbitMQ
// sends up to amqp.prefetch messages ahead; each is acknowledged manually.
//
// # Not losing a notification
//
// Events go through the shared delivery of every source (hooks/delivery):
// published with their id as Nats-Msg-Id, or written to the spool
// (spool_dir) while NATS cannot take them and sent, oldest first, when it
// is back. A message is acknowledged only once it is safe elsewhere:
//
//   - an instance notification: once its event is stored by JetStream (a
//     duplicate counts: the stream holds it) or durably spooled. The event
//     id carries Nova's message_id, so a redelivered notification is stored
//     once. Should neither work (the spool not writable), the bridge
//     retries with backoff and the message, and those after it, stay
//     unacknowledged in RabbitMQ's durable queue;
//   - a poison message (not JSON, an unknown envelope, a payload vmglue
//     cannot read): after its dead letter is stored in VMGLUE_DLQ on
//     vmglue.dlq.bridge-openstack.<cloud>.<vm or _>, with the reason, the
//     error and the message with its context removed (openstack.Redact);
//     while NATS is away it waits, unacknowledged, with the queue behind it;
//   - a notification vmglue does not map (instance.exists, a volume
//     event, ...): at once, counted.
//
// When RabbitMQ goes away (a restart, a node failure), the unacknowledged
// messages go back to the queue and the bridge reconnects (each URL in
// turn, with backoff) and consumes again. On shutdown, the message in hand
// is finished or left unacknowledged for redelivery.
//
// # Lookup
//
// With lookup.enabled, an event of a running or changing VM whose
// notification carries no address (Nova still allocating the port) is
// completed by one GET /servers/<uuid> through gophercloud (clouds.yaml or
// OS_* variables, re-authenticating when the token expires). A failed lookup
// is logged and the event published as it is.
//
// # Secrets
//
// The notification's context, with its live _context_auth_token, is never
// decoded, logged, published or dead-lettered. The AMQP password comes
// from a file or the environment; URLs in logs and errors are redacted.
package bridge
