// Package opennebula turns what OpenNebula says about a VM into a normalized
// eventbus.VM and eventbus.Event.
//
// It reads the input of a VM state hook exactly as OpenNebula's Hook
// Execution Manager (HEM) delivers it (ParseHookInput), one VM document as
// one.vm.info returns it or as a hook's $TEMPLATE decodes to (ParseVM), and a
// VM_POOL document for the sweep (ParsePool; the ...With forms take the
// source's protection of secrets, so that the sweep makes the hook's
// snapshot; the XML-RPC client is the api subpackage). It uses only
// encoding/xml, matches elements by local name (with or without
// xmlns="http://opennebula.org/XMLSchema"), and accepts compact or
// pretty-printed XML, CDATA or escaped text.
//
// # Hook input
//
// Register the hook with ARGUMENTS="$TEMPLATE <word>" and ARGUMENTS_STDIN=yes.
// HEM then writes "<base64 VM XML> <word>" to stdin, with no trailing newline.
// Without ARGUMENTS_STDIN the same tokens arrive as arguments. The first token
// must be strict standard base64 (RFC 4648, padded, no line breaks). The other
// words are ignored: the state always comes from the XML, so two hooks that
// fire for the same VM snapshot produce the same event id. The decoded XML may
// be at most MaxInputSize bytes; a caller reading stdin should stop after
// base64.StdEncoding.EncodedLen(MaxInputSize) plus a few KiB. The event
// built from it is bounded by eventbus.NewEvent (attribute values, labels,
// names: see eventbus.MaxAttributeValue), so it always fits in one NATS
// message.
//
// Bytes that are not valid UTF-8, and characters XML forbids, are replaced
// by U+FFFD before the document is read, wherever they are (see Repairs,
// ParseHookInputRepairs): a tenant's malformed USER_TEMPLATE never loses an
// event. Only such a byte in a field the mapping needs (ID, STATE) still
// makes the document invalid.
//
// Every error caused by the input wraps ErrInvalidInput and is one short line
// that never quotes more than a few bytes of the input.
//
// # Mapping
//
//	Cloud, CloudType   the cloud argument, "opennebula"
//	ID                 /VM/ID (canonical decimal)
//	Name               /VM/NAME
//	Hostname           USER_TEMPLATE/HOSTNAME, else TEMPLATE/CONTEXT/SET_HOSTNAME, else empty
//	Owner, Group       /VM/UNAME, /VM/GNAME
//	Host               HOSTNAME of the HISTORY with the highest SEQ (numeric)
//	State, LCMState    StateName(/VM/STATE), LCMStateName(/VM/LCM_STATE)
//	PrevState,         StateName(/VM/PREV_STATE), LCMStateName(/VM/PREV_LCM_STATE): the state
//	PrevLCMState       the transition left (a state event's document has them); both empty when
//	                   the document has no PREV_STATE (the API's short pool bodies)
//	Kind               Kind(STATE, LCM_STATE), see the table below
//	NICs               TEMPLATE/NIC, TEMPLATE/PCI with TYPE=NIC, TEMPLATE/NIC_ALIAS
//	Labels             USER_TEMPLATE/LABELS split on ",", trimmed, empty and repeated ones dropped
//	Attributes         every scalar child of USER_TEMPLATE (LABELS and HOSTNAME included);
//	                   vectors (elements with children) are skipped; a repeated name keeps its first value;
//	                   never a secret in clear text (eventbus.Secrets.Protect): the challenge
//	                   attribute (PUPPET_CHALLENGE) becomes "hmac-sha256:<hex>" with the hook's
//	                   challenge key, or is left out without one; every other secret one
//	                   (eventbus.SecretNames: *PASS*, *TOKEN*, *KEY, ...) becomes "(redacted)"
//	Times.Created      /VM/STIME
//	Times.Ended        /VM/ETIME
//	Times.Changed      the newest of the last HISTORY's STIME, ETIME, PSTIME, PETIME, RSTIME,
//	                   RETIME, ESTIME, EETIME and of /VM/ETIME and /VM/STIME (so a VM without
//	                   history, e.g. PENDING, changed when it was created)
//	Times.Observed     /VM/LAST_POLL
//	Version            Deleted = STATE is DONE; Seq = highest HISTORY SEQ, -1 without history;
//	                   Changed, Observed = the times above in Unix nanoseconds (0 when unknown)
//
// Times of 0 (or below) mean "not set" and are omitted; times are UTC.
// Scalar values are trimmed of surrounding white space.
//
// A NIC has ID = NIC_ID, Name = NAME, Network = NETWORK, NetworkID =
// NETWORK_ID, IP, IP6, IP6Global = IP6_GLOBAL, IP6ULA = IP6_ULA and MAC. An
// alias also has Alias = true and Parent = PARENT (the parent NIC's NAME, e.g.
// "NIC0"). OpenNebula numbers NICs and aliases from one counter, so NICs are
// sorted by NIC_ID as a number (an id that is not a number sorts last, by
// text); on equal ids a NIC comes before an alias, then document order. An
// alias therefore sits in id order, not necessarily right after its parent.
//
// # Kinds
//
// STATE decides the kind, except for ACTIVE, where LCM_STATE decides it
// (OpenNebula sets LCM_STATE only in ACTIVE; elsewhere it is LCM_INIT).
//
//	STATE                                  kind
//	INIT, PENDING, HOLD, CLONING           created
//	POWEROFF, STOPPED, SUSPENDED,
//	UNDEPLOYED                             stopped
//	DONE                                   deleted
//	FAILED (7, unused), CLONING_FAILURE    failed
//	ACTIVE                                 by LCM_STATE:
//
//	LCM_STATE (in ACTIVE)                  kind
//	RUNNING                                running
//	UNKNOWN                                unknown
//	every *_FAILURE, FAILURE (14, removed) failed
//	LCM_INIT, PROLOG, BOOT, BOOT_UNKNOWN,
//	BOOT_POWEROFF, BOOT_SUSPENDED,
//	BOOT_STOPPED, BOOT_UNDEPLOY,
//	PROLOG_RESUME, PROLOG_UNDEPLOY,
//	CLEANUP_RESUBMIT                       starting
//	MIGRATE, SAVE_MIGRATE, PROLOG_MIGRATE,
//	PROLOG_MIGRATE_POWEROFF,
//	PROLOG_MIGRATE_SUSPEND,
//	PROLOG_MIGRATE_UNKNOWN, BOOT_MIGRATE   migrating
//	SHUTDOWN, SHUTDOWN_POWEROFF,
//	SHUTDOWN_UNDEPLOY, SAVE_STOP,
//	SAVE_SUSPEND, EPILOG, EPILOG_STOP,
//	EPILOG_UNDEPLOY, CLEANUP_DELETE,
//	CANCEL (13, removed)                   stopping
//	HOTPLUG*, DISK_SNAPSHOT*, DISK_RESIZE*,
//	BACKUP, BACKUP_POWEROFF, RESTORE       changing
//
// Numbers OpenNebula does not define (up to 7.4) are named "UNKNOWN_<n>"
// (StateName(7) is "FAILED", LCMStateName(58) is "UNKNOWN_58"). Such a state,
// and ACTIVE with such an LCM state, has kind unknown: a worker keeps what it
// applied until a state it understands arrives. It is never an error.
package opennebula
