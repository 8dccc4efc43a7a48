// Package listen is `vmglue listen opennebula`: a resident subscriber to
// oned's ZeroMQ event stream that publishes every VM state change as a
// vmglue event, with no process per event.
//
// # The stream
//
// oned's hook manager driver (one_hm) publishes every state change on a
// ZeroMQ PUB socket (HM_MAD -p, default tcp://127.0.0.1:2101): one
// two-frame message per key, the key ("EVENT STATE VM/<STATE>/<LCM_STATE>/<id> ",
// with a trailing space) and the base64 of a <HOOK_MESSAGE> holding the
// whole VM document. HEM is one subscriber; the listener is another. It
// subscribes to Config.Filters (prefixes that end in "/"; by default every
// VM state key, and only the "EVENT STATE" form, so each change is read
// once), decodes the message with the hook's parser and mapping
// (opennebula.ParseHookMessage; the state comes from the VM document) and
// publishes through hooks/delivery's resident Publisher: events are spooled
// on disk while NATS is away and sent, in order, when it is back. The same
// change seen by the hook and the listener has the same event id, so the
// stream's duplicate window stores it once.
//
// A message that cannot be read (not two frames, bad base64, bad XML, a key
// for another object, a key and a message about different VMs) is counted
// (vmglue_listen_messages_total{result="malformed"}) and skipped.
//
// # What PUB/SUB loses, and the sweep
//
// ZeroMQ PUB/SUB is at-most-once: what oned publishes while the listener is
// down or reconnecting is gone, and oned drops messages for a subscriber
// that falls behind its send high-water mark (HM_MAD -h). So the listener
// runs a sweep of the cloud's API (a Sweeper) after every connect (the first
// one and each reconnect; 1s after it, since a ZeroMQ subscription is not
// acknowledged) and every Config.SweepInterval. A sweep asked for while one
// runs gives one more after it. `vmglue listen opennebula` sweeps with the
// sweep.opennebula entry of its cloud (internal/sweep), through its own
// delivery. Without a Sweeper the gaps wait for serve's periodic sweep.
//
// A connection that fails is closed and dialled again with backoff (0.1s
// up to 5s). A dropped TCP connection is noticed by the kernel's keepalive.
//
// # Security
//
// The stream is unauthenticated and unencrypted, and carries whole VM
// documents. one_hm binds to 127.0.0.1 by default; an endpoint off loopback
// needs oned's socket opened (-b in HM_MAD) and should only cross a trusted
// network. The listener logs a warning for such an endpoint.
//
// # Metrics
//
//	vmglue_listen_messages_total{result}   published, duplicate, spooled, lost, malformed
//	vmglue_listen_connects_total           connections to oned's stream (each followed by a sweep)
//	vmglue_listen_sweeps_total{result}     ok, error
package listen
