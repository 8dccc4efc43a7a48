package eventbus

import "path/filepath"

// The NATS roles of vmglue. Each has its own credential; the permissions
// (eventbus/natsserver.Permissions, deploy/nats/permissions.conf) give each
// only what it needs:
//
//   - RoleHook: the hook and every event source publish VM events
//     (vmglue.vm.>) and read the acks on their own inbox, nothing else.
//   - RoleServe: vmglue serve (the workers) provisions and uses everything.
//   - RoleOps: the ops commands read the streams and buckets, republish
//     events (replay, dlq retry, spool flush) and delete dead letters.
//   - RoleAutosign: vmglue autosign reads the VM snapshots and the certname
//     index and writes the certificate bindings.
const (
	RoleHook     = "hook"
	RoleServe    = "serve"
	RoleOps      = "ops"
	RoleAutosign = "autosign"
)

// Roles lists every role.
var Roles = []string{RoleHook, RoleServe, RoleOps, RoleAutosign}

// InboxPrefix is the reply-subject prefix of a role's connections: a role
// may subscribe to its own inbox only, so it never sees another role's
// replies (KV values, events). RoleServe keeps NATS's default _INBOX.
func InboxPrefix(role string) string {
	if role == RoleServe || role == "" {
		return ""
	}
	return "_INBOX_" + role
}

// CredentialsDir is the directory, inside the embedded server's data
// directory, where vmglue serve keeps one password file per role.
const CredentialsDir = "credentials"

// CredentialPath is the password file of role in the embedded server's
// data directory: <dataDir>/credentials/<role>.password. The NATS user
// name is the role.
func CredentialPath(dataDir, role string) string {
	return filepath.Join(dataDir, CredentialsDir, role+".password")
}
