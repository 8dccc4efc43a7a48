package natsconf_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
)

// cluster is three nats-server nodes started in this process from the
// shipped nats-cluster.conf.
type cluster struct {
	nodes []*server.Server
	dirs  []string          // their stores
	pw    map[string]string // role (and "route") -> password
}

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
// passwords in the environment the file documents. The test rewrites only
// what must differ on one machine: the client port (random), the cluster
// listen address (a free loopback port, which the routes name) and the
// store (a temporary directory per node). It returns once the JetStream
// meta group has a leader and every node is current.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{pw: map[string]string{"route": secret(t)}}
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
		o, err := server.ProcessConfigFile("nats-cluster.conf")
		if err != nil {
			t.Fatalf("nats-cluster.conf as %s: %v", name, err)
		}
		if o.ServerName != name || o.Cluster.Name != "vmglue" || len(o.Routes) != 3 || !o.JetStream ||
			o.Cluster.Username != "route" || o.Cluster.Password != c.pw["route"] || len(o.Users) != len(eventbus.Roles) {
			t.Fatalf("nats-cluster.conf as %s: server_name %q cluster %q, %d routes, jetstream %v, route user %q, %d users",
				name, o.ServerName, o.Cluster.Name, len(o.Routes), o.JetStream, o.Cluster.Username, len(o.Users))
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

// A server that does not know the route password cannot route into the
// cluster (whose routes would pass every role's permissions): the route
// port refuses a route CONNECT without it, or with another.
func TestClusterRouteNeedsPassword(t *testing.T) {
	c := startCluster(t)
	for _, tt := range []struct{ name, connect string }{
		{"no credentials", `{"verbose":false,"pedantic":false,"name":"intruder"}`},
		{"wrong password", `{"verbose":false,"pedantic":false,"user":"route","pass":"not-the-password","name":"intruder"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", c.nodes[0].ClusterAddr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(conn)
			if info, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(info, "INFO ") {
				t.Fatalf("route port greeting %q: %v", info, err)
			}
			if _, err := fmt.Fprintf(conn, "CONNECT %s\r\nPING\r\n", tt.connect); err != nil {
				t.Fatal(err)
			}
			reply, err := r.ReadString('\n')
			if err != nil || !strings.Contains(reply, "Authorization Violation") {
				t.Fatalf("route CONNECT %s: %q %v, want an authorization violation", tt.name, reply, err)
			}
		})
	}
}
