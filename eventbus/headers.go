package eventbus

// HeaderReplay is set (to "1") on an event that `vmglue replay`
// republished to its own subject.
//
// The headers of a dead letter and of a republished event addressed to one
// worker (Vmglue-Worker, Vmglue-Reason, Vmglue-Retry, Vmglue-For-Worker)
// are defined by the worker runtime that reads them.
const HeaderReplay = "Vmglue-Replay"
