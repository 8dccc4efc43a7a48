// Package sweep compares a cloud's API with the VMs vmglue knows and
// publishes what differs: the complete but slow source beside the fast
// push sources (the hook, a ZeroMQ listener, the Nova bridge), so that a
// change they missed is not missed for ever.
//
// One sweep of a cloud (Sweeper.Run):
//
//  1. List every VM of the cloud (Cloud.List: OpenNebula's
//     one.vmpool.infoextended of all users, paged; Nova's servers of every
//     project). An error ends the sweep: nothing is concluded from an
//     incomplete answer, no count moves.
//  2. Read the snapshots vmglue holds for the cloud (the KV bucket
//     VMGLUE_VMS the workers merge every event into) and the absences
//     counted so far (VMGLUE_SWEEP).
//  3. For each listed VM: unknown to vmglue, or known with an older
//     version, or as new but with other content (the cloud's LAST_POLL and
//     vmglue's Seen do not count) → its snapshot is published as an event
//     with the CloudEvents extension vmglueorigin=sweep; the event id is the
//     one the hook makes of the same document, so the stream keeps one. A VM
//     vmglue knows as deleted stays deleted. A listed VM's absence count is
//     cleared.
//  4. For each VM vmglue knows alive that the cloud did not list: its
//     absence count goes up. At Options.MissingSweeps (default 2) it is due
//     for deletion; if more VMs are due than Options.MaxDeleteShare (default
//     0.25) of the cloud's known VMs, none is deleted (held back, logged,
//     counted) unless Mode.Force. Otherwise the cloud is asked for each due
//     VM alone (Cloud.Lookup): alive → it was hidden by paging, nothing
//     happens; deleted → that snapshot is published; unknown → vmglue's last
//     snapshot is published as deleted, observed at the first sweep that
//     missed it (the same event from every sweeper).
//
// Mode.DryRun does all the reading and deciding and changes nothing: no
// event, no count. A Sweeper never runs two sweeps at once; sweeps of one
// cloud in two processes share the counts (compare-and-set).
//
// # Use from a source
//
// serve runs Loop over the sweepers Build makes of the config's sweep
// section. A resident source that may have missed events (a ZeroMQ
// listener after a reconnect) builds the sweeper of its cloud with its own
// delivery and calls Sweep:
//
//	sweepers, closeAll, err := sweep.Build(ctx, cfg.Sweep, "one", js, publisher, metrics, log)
//	...
//	res, err := sweepers[0].Sweep(ctx) // on start and after every reconnect
package sweep
