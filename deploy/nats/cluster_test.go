package natsconf_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/testenv"
)

// cluster is three nats-server nodes started in this process from the
// shipped nats-cluster.conf.
type cluster struct {
	nodes []*server.Server
	dirs  []string          // their stores
	pw    map[string]string // role (and "route") -> password
	ca    *testenv.TestCA   // signed the nodes' certificates
}

// caFile is the PEM of the CA that signed the nodes' certificates, as
// nats.ca_file and VMGLUE_NATS_CA take it.
func (c *cluster) caFile() string { return c.ca.CAFile }

// tls is the client option that verifies the nodes (their client ports
// demand TLS).
func (c *cluster) tls() nats.Option { return nats.RootCAs(c.ca.CAFile) }

// urls is the client URL list of every node, as a source or serve takes it.
func (c *cluster) urls() string {
	var u []string
	for _, n := range c.nodes {
		u = append(u, n.ClientURL())
	}
	return strings.Join(u, ",")
}

func secret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// startCluster starts three real nats-server nodes (the module vmglue
// requires, embedded in the test process) from nats-cluster.conf as
// shipped, each parsed with its own VMGLUE_NATS_NODE and the routes and
// passwords in the environment the file documents, and each node's TLS
// certificate (for 127.0.0.1, from a CA the test makes) in
// VMGLUE_NATS_TLS_CERT/KEY, the CA in VMGLUE_NATS_TLS_CA: clients and
// routes speak TLS only. The test rewrites only
// what must differ on one machine: the client port (random), the cluster
// listen address (a free loopback port, which the routes name) and the
// store (a temporary directory per node). It returns once the JetStream
// meta group has a leader and every node is current.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{pw: map[string]string{"route": secret(t)}, ca: testenv.NewTestCA(t)}
	t.Setenv("VMGLUE_NATS_TLS_CA", c.ca.CAFile)
	for _, role := range eventbus.Roles {
		c.pw[role] = secret(t)
		t.Setenv("VMGLUE_NATS_"+strings.ToUpper(role)+"_PASSWORD", c.pw[role])
	}
	t.Setenv("VMGLUE_NATS_ROUTE_PASSWORD", c.pw["route"])
	ports := make([]int, 3)
	var routes []string
	for i := range ports {
		_, p, err := net.SplitHostPort(natstest.FreeAddr(t))
		if err != nil {
			t.Fatal(err)
		}
		ports[i], _ = strconv.Atoi(p)
		routes = append(routes, fmt.Sprintf("%q", fmt.Sprintf("nats-route://route:%s@127.0.0.1:%d", c.pw["route"], ports[i])))
	}
	t.Setenv("VMGLUE_NATS_ROUTES", "["+strings.Join(routes, ", ")+"]")
	for i, port := range ports {
		name := fmt.Sprintf("nats-%d", i+1)
		t.Setenv("VMGLUE_NATS_NODE", name)
		cert, key := c.ca.Issue(t, name, true)
		t.Setenv("VMGLUE_NATS_TLS_CERT", cert)
		t.Setenv("VMGLUE_NATS_TLS_KEY", key)
		o, err := server.ProcessConfigFile("nats-cluster.conf")
		if err != nil {
			t.Fatalf("nats-cluster.conf as %s: %v", name, err)
		}
		if o.ServerName != name || o.Cluster.Name != "vmglue" || len(o.Routes) != 3 || !o.JetStream ||
			o.Cluster.Username != "route" || o.Cluster.Password != c.pw["route"] || len(o.Users) != len(eventbus.Roles) ||
			o.TLSConfig == nil || o.Cluster.TLSConfig == nil || o.Cluster.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert {
			t.Fatalf("nats-cluster.conf as %s: server_name %q cluster %q, %d routes, jetstream %v, route user %q, %d users, client TLS %v, route TLS %v",
				name, o.ServerName, o.Cluster.Name, len(o.Routes), o.JetStream, o.Cluster.Username, len(o.Users), o.TLSConfig != nil, o.Cluster.TLSConfig != nil)
		}
		o.Cluster.Host, o.Cluster.Port = "127.0.0.1", port
		c.nodes = append(c.nodes, startNode(t, o))
		c.dirs = append(c.dirs, o.StoreDir)
	}
	await(t, 30*time.Second, "a JetStream meta leader", func() error {
		leaders := 0
		for _, n := range c.nodes {
			if !n.JetStreamIsCurrent() || n.NumRoutes() < 2 {
				return fmt.Errorf("%s: current %v, %d routes", n.Name(), n.JetStreamIsCurrent(), n.NumRoutes())
			}
			if n.JetStreamIsLeader() {
				leaders++
			}
		}
		if leaders != 1 {
			return fmt.Errorf("%d leaders", leaders)
		}
		return nil
	})
	return c
}

// await polls cond until it returns nil, or fails the test after limit
// with the last reason cond gave.
func await(t *testing.T, limit time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for err := cond(); err != nil; err = cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s: %v", what, limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// streams are the streams of everything eventbus.Provision creates.
var streams = []string{
	eventbus.StreamEvents, eventbus.StreamDLQ,
	"KV_" + eventbus.BucketVMs, "KV_" + eventbus.BucketApplied, "KV_" + eventbus.BucketLocks,
	"KV_" + eventbus.BucketCertnames, "KV_" + eventbus.BucketCertBindings,
	"KV_" + eventbus.BucketSweep, "KV_" + eventbus.BucketMeta,
}

// awaitReplicas waits until every stream in names has replicas peers (its
// leader and replicas-1 followers), all current and online.
func awaitReplicas(t *testing.T, js jetstream.JetStream, replicas int, names ...string) {
	t.Helper()
	for _, name := range names {
		await(t, 30*time.Second, fmt.Sprintf("stream %s with %d current peers", name, replicas), func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			st, err := js.Stream(ctx, name)
			if err != nil {
				return err
			}
			in := st.CachedInfo()
			if in.Config.Replicas != replicas || in.Cluster == nil || in.Cluster.Leader == "" || len(in.Cluster.Replicas) != replicas-1 {
				return fmt.Errorf("R%d, cluster %+v", in.Config.Replicas, in.Cluster)
			}
			for _, p := range in.Cluster.Replicas {
				if !p.Current || p.Offline {
					return fmt.Errorf("peer %s current %v offline %v", p.Name, p.Current, p.Offline)
				}
			}
			return nil
		})
	}
}
