// Package natsconf holds no code: this directory is the example
// nats-server configuration of vmglue for an external NATS, and the tests
// that start real nats-servers with it.
//
//   - nats-server.conf: one node.
//   - nats-cluster.conf: a three-node JetStream cluster (vmglue's streams
//     and buckets with nats.stream.replicas: 3). The three nodes run the
//     same file; the node's name (VMGLUE_NATS_NODE), the routes to the
//     three nodes with the route password (VMGLUE_NATS_ROUTES,
//     VMGLUE_NATS_ROUTE_PASSWORD), the node's TLS certificate and key and
//     the nodes' CA (VMGLUE_NATS_TLS_CERT, VMGLUE_NATS_TLS_KEY,
//     VMGLUE_NATS_TLS_CA) and the role passwords come from each server's
//     environment, as NATS' own deployments take the server name from the
//     environment (the Helm chart's $SERVER_NAME): one file to keep, one
//     EnvironmentFile per node with the secrets. Clients and routes speak
//     TLS only (routes mutual TLS), so passwords cross the network only
//     inside it.
//   - permissions.conf: vmglue's NATS roles, included by both.
//
// The tests start the servers in the test process (the nats-server module
// vmglue requires, server.ProcessConfigFile on the shipped files); they
// rewrite only what must differ on one machine: the client ports (random),
// the cluster listen ports (free loopback ports, which VMGLUE_NATS_ROUTES
// names) and the stores (temporary directories); the certificates come
// from a CA each test makes (internal/testenv.NewTestCA).
package natsconf
