package eventbus

// Names of everything vmglue provisions on the bus.
const (
	// StreamEvents holds every event, on subjects vmglue.vm.<cloud>.<vmid>.<kind>.
	StreamEvents = "VMGLUE_EVENTS"
	// SubjectPrefix is the first two tokens of every event subject.
	SubjectPrefix = "vmglue.vm"
	// SubjectAll matches every event subject.
	SubjectAll = SubjectPrefix + ".>"

	// StreamDLQ holds dead-lettered events, on vmglue.dlq.<worker>.<cloud>.<vmid>.
	StreamDLQ = "VMGLUE_DLQ"
	// DLQPrefix is the first two tokens of every dead-letter subject.
	DLQPrefix = "vmglue.dlq"

	// BucketVMs is the KV bucket with the newest snapshot of each VM, key "<cloud>.<vmid>".
	BucketVMs = "VMGLUE_VMS"
	// BucketApplied is the KV bucket with what each worker applied, key "<worker>.<cloud>.<vmid>".
	BucketApplied = "VMGLUE_APPLIED"
	// BucketLocks is the KV bucket of per-VM leases, key "<worker>.<cloud>.<vmid>".
	BucketLocks = "VMGLUE_LOCKS"
	// BucketCertnames is the puppet worker's index of certnames, key the
	// certname, value the JSON array of the VM keys it was recorded for.
	BucketCertnames = "VMGLUE_CERTNAMES"
	// BucketCertBindings says which VM each certname's certificate was
	// signed for: key the certname, value the JSON binding `vmglue
	// autosign` wrote when it signed (VM key, public key, time).
	BucketCertBindings = "VMGLUE_CERTBINDINGS"
	// BucketSweep is the sweep's count of consecutive successful sweeps each
	// known VM was missing from, key "<cloud>.<vmid>" (only missing VMs
	// have a key).
	BucketSweep = "VMGLUE_SWEEP"
	// BucketMeta holds what describes the installation itself: key
	// KeyInstallation.
	BucketMeta = "VMGLUE_META"
	// KeyInstallation is the key of the installation identity in BucketMeta.
	KeyInstallation = "installation"
)

// VMSubject returns the subject filter of every event of one VM.
func VMSubject(cloud, vmid string) string { return SubjectPrefix + "." + cloud + "." + vmid + ".*" }

// DefaultListen is the client address of vmglue serve's embedded server.
const DefaultListen = "127.0.0.1:4222"
