package natsconf_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/hooks/delivery"
)

// serves returns how many vmglue serve connections each node of nodes
// holds.
func serves(t *testing.T, c *cluster, nodes ...int) []int {
	t.Helper()
	n := make([]int, len(nodes))
	for j, i := range nodes {
		cz, err := c.nodes[i].Connz(&server.ConnzOptions{Username: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, ci := range cz.Conns {
			if ci.AuthorizedUser == eventbus.RoleServe && ci.Name == "vmglue serve" {
				n[j]++
			}
		}
	}
	return n
}

// publishVM runs a hook, given url, the CA of its TLS ("": none) and the
// hook's password, for VM id (running) and fails the test unless it
// published.
func publishVM(t *testing.T, url, ca, password, id string) {
	t.Helper()
	o := delivery.Options{Conn: eventbus.ConnOptions{URL: url, User: eventbus.RoleHook, Password: password, CAFile: ca},
		SpoolDir: filepath.Join(t.TempDir(), "spool"), Timeout: 10 * time.Second}
	if r := delivery.Once(t.Context(), o, running(t, id)); r.Outcome != delivery.Published {
		t.Fatalf("hook for VM %s: %v (%v)", id, r.Outcome, r.Err)
	}
}

// inFileSD waits until the monitor worker's file_sd in sd holds VM id
// (its NIC 127.0.0.id), or fails the test after limit.
func inFileSD(t *testing.T, sd, id string, limit time.Duration) {
	t.Helper()
	await(t, limit, "VM "+id+" in "+sd, func() error {
		b, err := os.ReadFile(filepath.Join(sd, "node.json"))
		if err != nil || !strings.Contains(string(b), `"127.0.0.`+id+`:9100"`) {
			return fmt.Errorf("node.json: %s %v", b, err)
		}
		return nil
	})
}

// The bug found by TestClusterNodeLoss: a serve whose node was lost
// followed the file_sd bucket again only once its watch's heartbeats had
// stopped coming (~20 s). Two serves on the three nodes of the shipped
// config (in-process, startCluster): serve A given node 1 only, serve B
// nodes 2 and 3 (it may reconnect to node 1 too: the cluster tells it of
// node 1). B's node is shut down; once B is connected to the other,
// an event is published and converged (by A or B, whichever takes it),
// and B's file_sd must hold it. B follows the bucket again on the
// reconnect, so this takes about the converge's time; the bound, 10 s, is
// half the heartbeat's lag that the test is to rule out, with room for a
// loaded machine. The times measured are printed.
func TestClusterNodeLossFileSDFollows(t *testing.T) {
	c := startCluster(t)
	sdA, sdB := t.TempDir(), t.TempDir()
	monitor := func(sd string) string {
		return "workers:\n  monitor:\n    file_sd:\n      dir: " + sd + "\n      jobs: [{name: node, port: 9100}]\n"
	}
	runServe(t, c.nodes[0].ClientURL(), c.caFile(), 3, monitor(sdA))
	runServe(t, c.nodes[1].ClientURL()+","+c.nodes[2].ClientURL(), c.caFile(), 3, monitor(sdB))
	_, js := natstest.ConnectRole(t, c.nodes[0].ClientURL(), eventbus.RoleServe, c.pw[eventbus.RoleServe], c.tls())
	awaitReplicas(t, js, 3, "KV_VMGLUE_MONITOR_FILESD")
	publish := func(id string) {
		t.Helper()
		publishVM(t, c.nodes[0].ClientURL(), c.caFile(), c.pw[eventbus.RoleHook], id)
	}
	publish("1")
	inFileSD(t, sdA, "1", 60*time.Second)
	inFileSD(t, sdB, "1", 60*time.Second)

	gone := 1
	if n := serves(t, c, 1, 2); n[0] == 0 {
		gone = 2
	}
	if n := serves(t, c, gone); n[0] != 1 {
		t.Fatalf("serve B is connected to neither node 2 nor node 3")
	}
	c.nodes[gone].Shutdown()
	c.nodes[gone].WaitForShutdown()
	lost := time.Now()
	// B reconnects to either node left: it learnt node 1 from the cluster.
	await(t, 30*time.Second, "serve B reconnected", func() error {
		if n := serves(t, c, 0, 3-gone); n[0]+n[1] != 2 {
			return fmt.Errorf("serve connections on the nodes left: %v", n)
		}
		return nil
	})
	back := time.Now()
	publish("2")
	inFileSD(t, sdA, "2", 60*time.Second)
	converged := time.Now()
	inFileSD(t, sdB, "2", 10*time.Second)
	t.Logf("node %d shut down: serve B reconnected after %s; VM 2 in A's file_sd %s after B's reconnect, in B's %s after A's",
		gone+1, back.Sub(lost).Round(time.Millisecond), converged.Sub(back).Round(time.Millisecond),
		time.Since(converged).Round(time.Millisecond))
}
