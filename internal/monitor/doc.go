// Package monitor is vmglue's monitoring worker (name "monitor"): a
// worker.Target with two outputs, each optional.
//
//   - Icinga2: one Host object per VM through the REST API, with imported
//     templates, addresses, display name, variables mapped from the VM and
//     the ownership variables vars.vmglue_owner (owner_id) and
//     vars.vmglue_vm ("<cloud>.<id>"). A host without both is foreign:
//     never modified or deleted (a permanent worker.ErrConflict). A planned
//     stop (downtime_kinds, default stopped) schedules a downtime for the
//     host and its services; running again removes exactly that downtime;
//     the delete is DELETE with cascade=1.
//   - Prometheus file_sd: one JSON file per job, the VM's addresses with the
//     job's port and labels (cloud, vm_id, vm_name, vm_owner and the mapped
//     ones), written atomically (temporary file, fsync, rename).
//
// # Objects
//
//	host/<name>      {"templates":[...],"attrs":{"address":...,"vars.vmglue_owner":...}}
//	downtime/<name>  the downtime's comment ("vmglue: VM one.42 vm.stopped (POWEROFF)")
//	file_sd/<job>    {"targets":["10.0.0.42:9100"],"labels":{...}}
//
// # One file, many VMs
//
// A file_sd file holds every VM of a job, but the runtime converges one VM
// at a time. Apply records the VM's entry in the JetStream KV bucket
// BucketFileSD (key "<job>.<VM key>"; a VM that leaves a job leaves an
// empty value, a tombstone) and rewrites the job's file from the entries
// it knows before it returns (group commit: one write serves the Applies
// of many VMs that wait for it). RunBeside watches the bucket, so every
// serve process holds every entry, its own and the other processes', and
// writes the complete file into its own file_sd.dir; entries carry the
// bucket's revision, so an older copy never replaces a newer one. Without
// JetStream (deps.JS nil: unit tests) the entries live in the process.
//
// # Resync
//
// Resync (under the VM's lease, see SetGuard) re-creates hosts and
// downtimes removed by hand, sets changed attributes back and rewrites
// the file_sd files.
//
// # Failures
//
// Icinga unreachable, timeouts and 5xx answers are transient (retried);
// 400, 401, 403 and validation failures are permanent, as are conflicts
// and host names that are not valid object names (ValidHostName). The
// Icinga password is read from a file or the environment and never logged.
//
// # Metrics
//
// Collectors returns vmglue_monitor_icinga_requests_total{op,code},
// vmglue_monitor_icinga_up, vmglue_monitor_conflicts_total,
// vmglue_monitor_file_sd_writes_total{job} and
// vmglue_monitor_file_sd_targets{job}. README.md is the operator's page.
package monitor
