// Package worker is the runtime every vmglue worker runs on: one durable
// JetStream consumer per worker type, the newest snapshot of each VM in KV,
// converge (desired vs applied, apply the difference, record it), per-VM
// serialisation, retry with backoff, dead letters and metrics.
//
// A worker is a Target: a handful of methods that compute the desired
// objects of a VM and apply a change. Everything else lives here: New wires
// a Target to JetStream, Runner.Run consumes until its context is done.
//
// # Consuming
//
// Each worker type has its own durable consumer "vmglue-<name>" on
// vmglue.vm.>, deliver-all, explicit ack: every worker sees every event and
// fails independently. Several instances of a worker share the consumer, so
// JetStream spreads the events among them.
//
// # Converge
//
// For each event the runner merges the event's snapshot into Snapshots
// (VMGLUE_VMS) and converges the VM to the newest snapshot there, not to the
// event's: an old, replayed or out-of-order event is harmless. It computes
// want = Target.Desired(newest), reads the worker's Record in the Registry
// (VMGLUE_APPLIED) and takes have = applied ∪ pending. (The converge that
// stored a VM's first snapshot does not read it: a new VM has no record,
// and the first write below creates the record only if there is none.)
// When have equals want and nothing is pending, the event is acked as a
// no-op. Otherwise it writes {applied, pending: want} before any side
// effect, calls Apply, and writes {applied: what Apply returned}
// afterwards. Both writes compare-and-set the record's revision. The first
// is left out when the record already holds every object of want as
// applied and nothing pending (a plan that only deletes): after a crash in
// that Apply the record still claims the objects it was deleting, and the
// next converge deletes them again. Pending survives when the outcome
// of Apply is unknown: it did not return (a crash, a panic), or it failed
// other than permanently, which may hide a change that happened (an UPDATE
// applied by the server whose answer was lost); then the wanted objects
// that Apply's result does not confirm stay pending. An unverified object
// that a failed Apply returns unchanged is not confirmed (a target that
// could not be reached returns its have as it got it), and stays out of
// applied. After a Permanent error only the unverified objects the target
// still reports stay pending: what it dropped it found not ours. The next
// converge passes them in have, as ours, although they may not exist, and
// names them in Request.Unverified; so a delete that arrives before the retry
// still removes them. They stay pending until an Apply confirms or removes
// them.
//
// # Outcomes
//
// Success acks. A transient error naks with exponential backoff (Options.
// Backoff) until the MaxDeliver-th delivery fails, which dead-letters with
// reason "max deliveries". A Permanent error dead-letters at once (reason
// "conflict" for ErrConflict, else "permanent"): the event is published to
// VMGLUE_DLQ on vmglue.dlq.<worker>.<cloud>.<vmid> as a DeadLetter, then
// terminated; if that publish fails the event is retried, never dropped.
// A Requeue (an HAProxy server draining) is not a failure: the runner keeps
// the message un-acked, tells JetStream it is in progress, and converges
// again after the delay, so a drain of many minutes does not use up
// MaxDeliver. The server-side MaxDeliver of the consumer is unlimited; the
// runner does the counting so that nothing is dropped without a dead letter.
//
// # One VM at a time
//
// Two events of the same VM never converge concurrently in one worker type.
//
// In-process, the consumer callback only queues: each VM key has a FIFO
// queue drained by one goroutine, and at most Options.Concurrency drains
// converge at once. A slow VM holds one slot and its own queue, never the
// consumer or other VMs. Queued messages are kept alive with in-progress
// acks every AckWait/3.
//
// Across instances, a converge holds a lease: key "<worker>.<cloud>.<vmid>"
// in VMGLUE_LOCKS, taken with Create (which fails if the key exists),
// holding the instance id, renewed every LockTTL/6 from LockTTL/6 into a
// converge on, deleted (at its revision) afterwards: the delete marker is
// published without waiting for the server's answer, which the server
// applies before the connection's next request. The bucket's TTL (30s) frees the lease of an
// instance that died. An instance that finds the lease held keeps the
// message and tries again after Options.LockRetry, without using a
// delivery. The holder counts its lease as lost LockTTL/2 after the start of
// its last successful write, well before the server can hand it on: the
// converge's context then reports itself done from the clock alone (its
// Deadline is the lease's validity, moving forward with each renewal), even
// in a process that was paused (SIGSTOP, a frozen VM) and has not yet run
// the goroutine that cancels it. No Apply starts on such a context, and a
// target checks the Deadline before each call (the DNS batcher, right
// before an UPDATE leaves). If a renewal finds the lease taken, the
// converge is cancelled too; and because every registry write compares the
// revision it read, a stale instance cannot record over a newer converge:
// its write fails and the event is retried. What a target sent before the
// lease counted as lost is repaired by the next converge, which sees the
// newer record. Instances must have distinct Options.InstanceID values.
//
// # Ordered teardown
//
// Runner.After orders a worker, for one snapshot kind, after other workers
// of the process (serve wires runtime.teardown_order: by default the dns
// worker after lb and monitor on delete). A converge of such a snapshot
// with something to change first reads the other workers' records: each
// must have settled the VM (nothing pending, its applied objects equal to
// its Desired of the newest snapshot). While one has not, the converge
// changes nothing, records the start of the wait in its own Record
// (Waiting, which survives a crash and is read by every instance) and
// returns a Requeue after Options.TeardownPoll (1s): the lease and the
// slot are free meanwhile. Once Options.TeardownWait (2m) has passed since
// the recorded start it goes on, logs one warning naming the VM and the
// workers it waited for, and counts
// vmglue_worker_teardown_timeouts_total{worker,after}; each wait counts
// vmglue_worker_teardown_waits_total. A successful Apply, or a converge
// with nothing to do, clears the recorded wait. See order.go.
//
// # Shutdown
//
// When the context of Run is done the consumer stops, converges in progress
// get Options.ShutdownTimeout to finish, then their context is cancelled;
// every message still held (queued, parked, or cut) is nak'ed for prompt
// redelivery, to another instance if one runs (or to this one restarted),
// once the consumer's pull requests are withdrawn: a nak that reached the
// server before would go to one of them and be lost until AckWait.
//
// # Resync
//
// A Target that also implements Resyncer gets every applied record of the
// worker every Options.ResyncInterval and when Runner.TriggerResync asks,
// with no converge of this instance running meanwhile. Other instances may
// converge meanwhile: a target that repairs objects in Resync checks each
// repair with Runner.Guard (the VM's lease and its current record).
//
// # Metrics and logs
//
// vmglue_worker_events_total{worker,result}, vmglue_worker_converge_seconds,
// vmglue_worker_retries_total, vmglue_worker_dead_letters_total and
// vmglue_worker_in_flight, labelled with the worker; zerolog fields worker,
// cloud, vm and event_id, the error under "error", per-VM plans at debug.
//
// Snapshots and Registry are also what `vmglue vm`, `status`, autosign and
// replay read.
package worker
