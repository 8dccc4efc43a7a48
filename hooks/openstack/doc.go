// Package openstack turns Nova's lifecycle notifications into vmglue events.
//
// Nova publishes a notification on RabbitMQ for every instance change
// (oslo.messaging, driver "messagingv2"). The AMQP body is the oslo.messaging
// 2.0 envelope {"oslo.version": "2.0", "oslo.message": "<JSON string>"}; with
// driver "messaging" it is the bare 1.0 message. Decode accepts both and
// returns the Notification: message_id, event_type, priority, publisher_id,
// timestamp and the payload. The message context (the "_context_*" keys,
// among them a live "_context_auth_token") is never decoded: nothing of it
// can reach an event, a log line or a dead letter (Redact removes it from
// the copy of an undecodable message that is kept).
//
// Two payload formats:
//
//   - versioned (routing key versioned_notifications.info, event types
//     "instance.*"): the payload is a serialized oslo.versionedobject,
//     {"nova_object.name", "nova_object.version", "nova_object.data"}; a
//     major version above 2 is refused (a minor bump only adds fields);
//   - legacy (routing key notifications.info, event types
//     "compute.instance.*"): a flat dict with instance_id, fixed_ips, ...
//
// Event types and kinds (legacy types are the same with "compute." before
// them; "<state>" is the kind of the payload's vm_state, below):
//
//	instance.create.end                    <state> (running once active)
//	instance.power_on.end                  running
//	instance.power_off.end, shutdown.end   stopped
//	instance.delete.start                  stopping
//	instance.delete.end                    deleted (terminal)
//	instance.interface_attach.end,
//	instance.interface_detach.end          changing, with the new addresses
//	*.error, compute_task.*.error          failed
//	instance.update (legacy too)           <state>, only when the vm_state changed
//	reboot, rebuild, resize_finish,
//	live_migration_post, evacuate,
//	unshelve, restore, soft_delete,
//	shelve_offload, suspend, resume,
//	pause, unpause (.end)                  <state>
//
// Every other event type (instance.exists, volume and snapshot events,
// scheduler, service, the .start of most actions, ...) is ignored: Map
// returns ErrIgnored, which the bridge counts.
//
// vm_state → kind: building → created; active, rescued, resized → running;
// stopped, paused, suspended, shelved, shelved_offloaded, soft-delete →
// stopped; error → failed; deleted → deleted; anything else → unknown.
//
// The VM: id is the instance uuid; name the display name, or the hostname
// (host_name; legacy "hostname") when the bridge is configured so; owner
// the user id; project the project (tenant) id; host the compute host;
// state and lcm_state Nova's vm_state and task_state; one NIC per Neutron
// port (network label, MAC, and the device name of versioned
// notifications) with its first IPv4 in ip and its first IPv6 (a fixed
// address Neutron allocated, as OpenNebula's IP6) in ip6, further
// addresses of the port as aliases (floating IPs are not in Nova's
// notifications). A NIC's id is its port's MAC in lower case (NICID), the
// one field that both formats and Nova's API show, so that the bridge, its
// lookup and the sweep give one port one id (NICs, APINICs); a legacy
// notification without vif_mac (Nova before Liberty) makes one NIC per
// network, "net-<label>". NICs are in network name order, and in Nova's
// order within a network;
// metadata → attributes (tenant input, untrusted: the worker rules for
// attributes apply unchanged; secret ones become "(redacted)" through
// eventbus.Secrets.Protect, as in the hook); tags → labels; flavor and image.
//
// Version (eventbus's order): Nova has no sequence like OpenNebula's HISTORY
// SEQ. Changed is the instance's updated_at, Observed the notification's
// timestamp (when Nova emitted it); the bridge stamps Seen with the
// receipt; deleted wins as for every source. The event id is
// "<cloud>-<uuid>-<kind>-<message_id>", so a redelivered notification is
// dropped by the stream's duplicate window while two notifications never
// share an id.
package openstack
