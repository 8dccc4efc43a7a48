// Package worker is the runtime every vmglue worker runs on: one durable
// JetStream consumer per worker type, the newest snapshot of each VM in KV,
// converge (desired vs applied, apply the difference, record it), per-VM
// serialisation, retry with backoff, dead letters and metrics.
//
// A worker is a Target: a handful of methods that compute the desired
// objects of a VM and apply a change. Everything else lives here.
package worker
