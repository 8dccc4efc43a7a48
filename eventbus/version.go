package eventbus

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
)

// Version orders the snapshots of one VM (see the package doc): every field
// is monotonic per VM in the source that fills it, 0 when unknown. Times
// are Unix nanoseconds.
type Version struct {
	// Seq is the cloud's counter of the VM's transitions (OpenNebula: the
	// highest HISTORY SEQ; 0 for a cloud without one, such as Nova).
	Seq int64 `json:"seq"`
	// Changed is the cloud's time of the VM's newest transition
	// (OpenNebula: STIME/ETIME; Nova: updated_at).
	Changed int64 `json:"changed"`
	// Observed is the cloud's time of the snapshot (OpenNebula: LAST_POLL;
	// Nova: the notification's timestamp).
	Observed int64 `json:"observed"`
	// Seen is when the vmglue source took the snapshot, on the source's
	// clock (the hook: the start of its run). It is not part of the event id
	// nor of VM.Digest.
	Seen int64 `json:"seen,omitempty"`
}

// Compare returns -1, 0 or +1 as v is older than, as new as, or newer than
// o, field by field: Seq, Changed, Observed, Seen.
func (v Version) Compare(o Version) int {
	if c := cmp.Compare(v.Seq, o.Seq); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Changed, o.Changed); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Observed, o.Observed); c != 0 {
		return c
	}
	return cmp.Compare(v.Seen, o.Seen)
}

// Compare is the total order of the snapshots of one VM: -1, 0 or +1 as a
// is older than, the same as, or newer than b. Deleted wins, then the
// Version, then the Digest (a deterministic tie-break). 0 means the same
// content and version.
func Compare(a, b *VM) int {
	if a.Deleted() != b.Deleted() {
		if a.Deleted() {
			return 1
		}
		return -1
	}
	if c := a.Version.Compare(b.Version); c != 0 {
		return c
	}
	return strings.Compare(a.Digest(), b.Digest())
}

// Digest identifies the content of a snapshot: a hash of everything but
// Version.Seen and the transition (PrevState, PrevLCMState). Two copies of
// one observation have the same digest, whenever and by whichever source
// they were taken; so do a VM back in RUNNING after a failed shutdown and
// the RUNNING before it, and a snapshot with and without its transition
// (the sweep compares the cloud's API, which may not say it, by Digest).
func (vm *VM) Digest() string {
	d, _ := vm.observation(false) // cannot fail: a VM holds only strings, numbers and times
	return d
}

// Observation identifies one observation of one transition of the VM, the
// last part of its event id: the Digest when the snapshot has no
// transition, else a hash of everything but Version.Seen. Copies of one
// observation (a retried hook, a spool flush, the listener beside the
// hook) share it; a return to an earlier content by another transition
// (RUNNING, SHUTDOWN, RUNNING again) does not. The worker's snapshot store
// remembers the Observations it replaced to recognize late copies.
func (vm *VM) Observation() string {
	o, _ := vm.observation(true)
	return o
}

func (vm *VM) observation(transition bool) (string, error) {
	c := *vm
	c.Version.Seen = 0
	if !transition {
		c.PrevState, c.PrevLCMState = "", ""
	}
	if c.NICs == nil {
		c.NICs = []NIC{} // as NewEvent sends it
	}
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return digest(b), nil
}

// digest is the hex of the first 12 bytes of the SHA-256 of b.
func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}
