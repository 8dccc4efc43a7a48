// Package lb is the load-balancer worker: it keeps HAProxy backends in line
// with the VMs through the HAProxy runtime API (the admin "stats socket"),
// without reloads and without touching haproxy.cfg.
//
// A VM joins the backends listed in its user attribute (LB_BACKENDS,
// "web:8080,api:9000") or mapped from its labels, as a dynamic server named
// after the VM ("<cloud>-<vmid>") on the address of its first IPv4 NIC,
// added with "add server", then enabled ("enable server", "enable health").
// When it leaves the pool (stopped, deleted) its server is drained first and
// deleted only once its sessions are done or the drain timeout passed. A
// server vmglue did not add is never changed: a name clash is a permanent
// conflict. HAProxy forgets dynamic servers on reload; Resync puts them back
// from the registry, periodically and as soon as WatchReloads sees a reload.
// An instance that cannot be reached does not hold up the others: its
// servers are recorded "wanted" or "leaving", and Resync adds or drains and
// deletes them once it answers. See README.md for configuration and
// failure modes.
package lb
