package testenv

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NATSServerPkg is the main package of nats-server in the module vmglue
// already requires (go.mod pins its version): BuildNATSServer builds it
// without changing go.mod or go.sum.
const NATSServerPkg = "github.com/nats-io/nats-server/v2"

// BuildNATSServer builds the nats-server binary of the required module into
// dir and returns its path. For TestMain functions, so it returns an error.
func BuildNATSServer(dir string) (string, error) {
	out := filepath.Join(dir, "nats-server")
	cmd := exec.Command("go", "build", "-o", out, NATSServerPkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build nats-server: %v\n%s", err, b)
	}
	return out, nil
}

// NATSCluster is a JetStream cluster of nats-server processes (the binary
// of BuildNATSServer), each a child of the test process with its own store
// directory, client, route and monitoring port on 127.0.0.1, no auth.
// t.Cleanup stops every node by its pid.
type NATSCluster struct {
	Bin   string
	Nodes []*NATSNode
}

// NATSNode is one server of a NATSCluster.
type NATSNode struct {
	Name        string
	ClientPort  int
	MonitorPort int
	StoreDir    string
	confPath    string
	cmd         *exec.Cmd
	exited      chan struct{}
	Log         *LogBuffer // everything the server wrote, across restarts
}

// StartNATSCluster starts n nodes (3 for R3 streams) and waits until every
// node is healthy and the cluster has a meta leader.
func StartNATSCluster(t testing.TB, bin string, n int) *NATSCluster {
	t.Helper()
	c := &NATSCluster{Bin: bin}
	routes := make([]string, n)
	clusterPorts := make([]int, n)
	for i := range n {
		clusterPorts[i] = FreePort(t)
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", clusterPorts[i])
	}
	for i := range n {
		dir := t.TempDir()
		node := &NATSNode{Name: fmt.Sprintf("n%d", i+1), ClientPort: FreePort(t), MonitorPort: FreePort(t),
			StoreDir: filepath.Join(dir, "jetstream"), confPath: filepath.Join(dir, "nats-server.conf"), Log: &LogBuffer{}}
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream { store_dir: %q, max_memory_store: 64MB, max_file_store: 1GB }
cluster {
  name: vmglue-faults
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, node.Name, node.ClientPort, node.MonitorPort, node.StoreDir, clusterPorts[i], strings.Join(routes, ", "))
		if err := os.WriteFile(node.confPath, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		c.Nodes = append(c.Nodes, node)
	}
	t.Cleanup(func() {
		for _, node := range c.Nodes {
			node.stop()
			if t.Failed() {
				t.Logf("nats-server %s log (tail):\n%s", node.Name, tail([]byte(node.Log.String())))
			}
		}
	})
	for i := range c.Nodes {
		c.start(t, i)
	}
	for i := range c.Nodes {
		c.WaitHealthy(t, i, 60*time.Second)
	}
	WaitFor(t, 60*time.Second, "a JetStream meta leader with every peer current", func() bool { return c.MetaLeader() != "" })
	return c
}

// URLs is the client URL of every node, comma separated (what vmglue's
// nats.url and VMGLUE_NATS_URL take).
func (c *NATSCluster) URLs() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL()
	}
	return strings.Join(urls, ",")
}

// URL is the node's client URL.
func (n *NATSNode) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.ClientPort) }

// Index returns the index of the node named name, or -1.
func (c *NATSCluster) Index(name string) int {
	for i, n := range c.Nodes {
		if n.Name == name {
			return i
		}
	}
	return -1
}

func (c *NATSCluster) start(t testing.TB, i int) {
	t.Helper()
	n := c.Nodes[i]
	if n.cmd != nil {
		t.Fatalf("nats-server %s: already running", n.Name)
	}
	cmd := exec.Command(c.Bin, "-c", n.confPath)
	cmd.Stdout, cmd.Stderr = n.Log, n.Log
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nats-server %s: %v", n.Name, err)
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(n.exited) }()
}

// Kill SIGKILLs node i (by its pid) and waits until it is gone.
func (c *NATSCluster) Kill(t testing.TB, i int) {
	t.Helper()
	n := c.Nodes[i]
	if n.cmd == nil {
		t.Fatalf("nats-server %s: not running", n.Name)
	}
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill nats-server %s: %v", n.Name, err)
	}
	<-n.exited
	n.cmd = nil
}

// Restart starts node i again with the same configuration and store
// directory; WaitHealthy says when it has caught up.
func (c *NATSCluster) Restart(t testing.TB, i int) {
	t.Helper()
	c.start(t, i)
}

// WaitHealthy waits until node i is Healthy; it fails the test when the
// node exits meanwhile.
func (c *NATSCluster) WaitHealthy(t testing.TB, i int, timeout time.Duration) {
	t.Helper()
	n := c.Nodes[i]
	WaitFor(t, timeout, "nats-server "+n.Name+" healthy", func() bool {
		select {
		case <-n.exited:
			t.Fatalf("nats-server %s exited:\n%s", n.Name, tail([]byte(n.Log.String())))
		default:
		}
		return c.Healthy(i)
	})
}

// Healthy reports whether node i's /healthz answers 200: it runs, its
// JetStream is enabled and its streams and consumers are current. Safe
// to call from any goroutine.
func (c *NATSCluster) Healthy(i int) bool {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", c.Nodes[i].MonitorPort))
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// MetaLeader returns the name of the JetStream meta leader once the
// leader sees every other node as a current, online peer (streams of
// every replica count can then be placed), or "".
func (c *NATSCluster) MetaLeader() string {
	for _, n := range c.Nodes {
		if n.cmd == nil {
			continue
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/jsz", n.MonitorPort))
		if err != nil {
			continue
		}
		var jsz struct {
			Meta *struct {
				Leader   string `json:"leader"`
				Replicas []struct {
					Name    string `json:"name"`
					Current bool   `json:"current"`
					Offline bool   `json:"offline"`
				} `json:"replicas"`
			} `json:"meta_cluster"`
		}
		err = json.NewDecoder(resp.Body).Decode(&jsz)
		resp.Body.Close()
		if err != nil || jsz.Meta == nil || jsz.Meta.Leader != n.Name {
			continue // only the leader knows its peers' state
		}
		current := 0
		for _, r := range jsz.Meta.Replicas {
			if r.Current && !r.Offline {
				current++
			}
		}
		if current == len(c.Nodes)-1 {
			return n.Name
		}
	}
	return ""
}

// stop ends a running node: SIGTERM, then SIGKILL after 10 s.
func (n *NATSNode) stop() {
	if n.cmd == nil {
		return
	}
	Terminate(n.cmd.Process, n.exited, 10*time.Second)
	n.cmd = nil
}
