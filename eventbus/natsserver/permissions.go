package natsserver

import (
	"github.com/nats-io/nats-server/v2/server"

	"github.com/vmglue/vmglue/eventbus"
)

// kvStream is the stream behind a KV bucket.
func kvStream(bucket string) string { return "KV_" + bucket }

// readBucket lists the JetStream API subjects that open and read a bucket
// (info, direct and stored get, a watch for listing keys).
func readBucket(bucket string) []string {
	s := kvStream(bucket)
	return []string{
		"$JS.API.STREAM.INFO." + s,
		"$JS.API.DIRECT.GET." + s, "$JS.API.DIRECT.GET." + s + ".>",
		"$JS.API.STREAM.MSG.GET." + s,
		"$JS.API.CONSUMER.CREATE." + s, "$JS.API.CONSUMER.CREATE." + s + ".>",
		"$JS.FC." + s + ".>",
	}
}

// SourceDLQ is where a source dead-letters what it cannot turn into an
// event (the OpenStack bridge: worker name bridge-openstack); the hook
// role may publish there, never to a worker's dead letters.
const SourceDLQ = eventbus.DLQPrefix + ".bridge-openstack.>"

// Permissions returns what a role may do on the bus (eventbus.Roles); nil
// for an unknown role. deploy/nats/permissions.conf says the same for an
// external nats-server (a test keeps them equal).
//
//   - hook: publish VM events and a source's dead letters (SourceDLQ),
//     read the acks on its inbox. No subscription
//     to events, no JetStream API (so no bucket, stream or consumer).
//   - serve: everything (it provisions the streams, buckets and consumers).
//   - ops: read every stream and bucket (info, get, ephemeral consumers),
//     republish VM events (replay, dlq retry, spool flush, sweep), write
//     the sweep's bucket (VMGLUE_SWEEP), delete dead
//     letters, delete consumers (its ordered consumers delete themselves;
//     serve re-creates a worker's durable consumer when it starts). It
//     cannot write another bucket or create, change, purge or delete a
//     stream.
//   - autosign: read the VM snapshots and the certname index, read and
//     write the certificate bindings.
func Permissions(role string) *server.Permissions {
	inbox := func(role string) *server.SubjectPermission {
		return &server.SubjectPermission{Allow: []string{eventbus.InboxPrefix(role) + ".>"}}
	}
	switch role {
	case eventbus.RoleHook:
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{eventbus.SubjectAll, SourceDLQ}},
			Subscribe: inbox(role),
		}
	case eventbus.RoleServe:
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{">"}},
			Subscribe: &server.SubjectPermission{Allow: []string{">"}},
		}
	case eventbus.RoleOps:
		return &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{
				"$JS.API.INFO",
				"$JS.API.STREAM.INFO.*", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST",
				"$JS.API.STREAM.MSG.GET.*", "$JS.API.DIRECT.GET.*", "$JS.API.DIRECT.GET.*.>",
				"$JS.API.CONSUMER.CREATE.*", "$JS.API.CONSUMER.CREATE.*.>",
				"$JS.API.CONSUMER.INFO.*.*", "$JS.API.CONSUMER.NAMES.*", "$JS.API.CONSUMER.LIST.*",
				"$JS.API.CONSUMER.MSG.NEXT.*.*", "$JS.FC.>", "$JS.API.CONSUMER.DELETE.*.*",
				"$JS.API.STREAM.MSG.DELETE." + eventbus.StreamDLQ,
				"$KV." + eventbus.BucketSweep + ".>",
				eventbus.SubjectAll,
			}},
			Subscribe: inbox(role),
		}
	case eventbus.RoleAutosign:
		allow := []string{"$JS.API.INFO", "$KV." + eventbus.BucketCertBindings + ".>"}
		for _, b := range []string{eventbus.BucketVMs, eventbus.BucketCertnames, eventbus.BucketCertBindings} {
			allow = append(allow, readBucket(b)...)
		}
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: allow},
			Subscribe: inbox(role),
		}
	}
	return nil
}
