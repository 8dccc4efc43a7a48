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
// Version.Seen, the last part of the event id. Two copies of one
// observation have the same digest, whenever and by whichever source they
// were taken.
func (vm *VM) Digest() string {
	c := *vm
	c.Version.Seen = 0
	if c.NICs == nil {
		c.NICs = []NIC{} // as NewEvent sends it
	}
	b, err := json.Marshal(c)
	if err != nil { // cannot happen: a VM holds only strings, numbers and times
		return ""
	}
	return digest(b)
}

// digest is the hex of the first 12 bytes of the SHA-256 of b.
func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}
