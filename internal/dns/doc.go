// Package dns is vmglue's DNS worker: a worker.Target that keeps A, AAAA and
// PTR records of every VM in authoritative zones with RFC 2136 dynamic
// updates signed with TSIG (github.com/miekg/dns). README.md in this
// directory is the operator's page; this comment is the summary.
//
// # What it creates
//
// For a VM that is not deleted and whose kind is in present_kinds (default:
// every kind but deleted, so a stopped VM keeps its name), with at least one
// selected address:
//
//	A    web1.cloud.test.            10.0.0.42 (every IPv4 of the selected NICs)
//	AAAA web1.cloud.test.            fd00::42
//	TXT  web1.cloud.test.            "heritage=vmglue,vmglue/owner=<owner_id>,vmglue/installation=<id>,vmglue/vm=<cloud>.<id>"
//	PTR  42.0.0.10.in-addr.arpa.     web1.cloud.test. (per address inside a reverse zone)
//
// Object keys are "TYPE name" ("A web1.cloud.test."), values the sorted,
// comma-joined rdata. The name is name_template (default "{{.Name}}")
// normalized by Normalize; a relative name goes into the first forward zone.
// The VM's fields may not add labels or make the name absolute, and a label
// matching deny_names is refused (see hostName).
//
// # Ownership
//
// The TXT record is the ownership marker, as in external-dns: a forward
// name is ours when its TXT RRset is exactly our marker; a reverse name is
// ours when we recorded its PTR, or when its PTR RRset is exactly our host
// name and that name was ours before the Apply (a PTR already pointing at a
// forward name created just now is someone else's: a conflict unless
// adopt_existing). Every update carries prerequisites, checked atomically
// by the server:
//
//   - a name we create: "name is not in use" (RFC 2136 2.4.5);
//   - a name we change or delete: "RRset exists, value dependent" of the
//     marker (or of our PTR) (2.4.2).
//
// When a prerequisite fails, the worker asks the server who holds the name:
// nothing (a delete is then done; a create proceeds), our own marker (the
// registry was behind, e.g. after a cancelled Apply: adopted as ours), or
// something else: a permanent error wrapping worker.ErrConflict naming the
// name, and the records are left untouched, unless adopt_existing is set
// (then our RRset types replace theirs; other types at the name stay). A
// foreign name we only wanted to delete is left alone and forgotten.
// Objects of have that worker.Request.Unverified names (an Apply interrupted by a
// crash) are rewritten in full under the same prerequisites, so they are
// created when missing and verified when present.
//
// It never touches records at names it does not own, record types other
// than A, AAAA, TXT (forward) and PTR (reverse), SOA, NS, or any zone it
// is not configured for.
//
// # Batching
//
// Apply is called concurrently for many VMs. Each zone has a batcher: the
// parts of concurrent calls (prerequisites + updates) are sent as one UPDATE
// after batch.window (2 ms) since the first part, or when the message would
// exceed batch.max_records (500) or batch.max_bytes (60000), or before a
// part that touches a name already in the batch. At most 4 messages per
// zone are in flight. Messages above 1100 bytes go over TCP. A batch that
// fails on a prerequisite (or FORMERR, NOTZONE) is split in halves and
// re-sent until the parts at fault are alone: one conflicting VM never
// fails the others. Every message is signed and sent on a fresh connection
// (a reused dns.Conn chains TSIG MACs and gets BADSIG).
//
// # Failures
//
// Transient (retried by the runtime): timeout, refused connection, SERVFAIL,
// REFUSED under a key the server accepted (a frozen zone, or an update
// policy that refuses the key: servers answer both alike, so it is retried
// and dead-lettered after MaxDeliver), a cancelled context. The next server
// of the zone's list is tried first. Permanent (dead letter): a rejected
// key (BIND and Knot: NOTAUTH with BADSIG/BADKEY/BADTIME; PowerDNS: REFUSED
// without TSIG, told apart by a signed SOA query, see refusal), NOTAUTH,
// NOTZONE, FORMERR, NOTIMP, conflicts, invalid names or addresses. The TSIG secret is read from a file
// or an environment variable and never appears in a log line or an error.
//
// # Metrics
//
// Collectors returns vmglue_dns_update_messages_total{zone,rcode},
// vmglue_dns_update_records_total{zone} and vmglue_dns_conflicts_total.
package dns
