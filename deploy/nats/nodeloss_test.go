package natsconf_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/hooks/delivery"
)

// running is a running VM's event, as a hook sends it.
func running(t *testing.T, id string) *eventbus.Event {
	t.Helper()
	ev, err := eventbus.NewEvent(eventbus.VM{Cloud: "one", CloudType: "opennebula", ID: id, Name: "web" + id,
		State: "ACTIVE", LCMState: "RUNNING", Kind: eventbus.KindRunning,
		NICs: []eventbus.NIC{{ID: "0", IP: "127.0.0." + id}}, Version: eventbus.Version{Seq: 1, Changed: 1e18}})
	if err != nil {
		t.Fatal(err)
	}
	return &ev
}

// serveNode returns the index of a node a vmglue serve is connected to.
func serveNode(t *testing.T, c *cluster) int {
	t.Helper()
	for i := range c.nodes {
		if serves(t, c, i)[0] > 0 {
			return i
		}
	}
	t.Fatal("no vmglue serve is connected to a node")
	return -1
}

// Two vmglue serve processes (in-process here) share the three nodes, each
// given the three URLs, with the streams R3. When the node one of them is
// connected to goes (shut down): a hook given the three URLs publishes to
// a node that answers and the stream (two of three) stores the event; the
// serve that lost its node reconnects to another; a resident source (the
// listener's and the bridge's delivery) open across the loss publishes (or
// spools and then sends) the next event; the VMs are converged and both
// serves' file_sd (the monitor worker, one copy per serve) hold them all;
// every event is stored once.
func TestClusterNodeLoss(t *testing.T) {
	c := startCluster(t)
	sds := []string{t.TempDir(), t.TempDir()}
	for _, sd := range sds {
		runServe(t, c.urls(), c.caFile(), 3, "workers:\n  monitor:\n    file_sd:\n      dir: "+sd+"\n      jobs: [{name: node, port: 9100}]\n")
	}
	hook := func(id string) {
		t.Helper()
		o := delivery.Options{Conn: eventbus.ConnOptions{URL: c.urls(), User: eventbus.RoleHook, Password: c.pw[eventbus.RoleHook], CAFile: c.caFile()},
			SpoolDir: filepath.Join(t.TempDir(), "spool"), Timeout: 10 * time.Second}
		if r := delivery.Once(context.Background(), o, running(t, id)); r.Outcome != delivery.Published {
			t.Fatalf("hook for VM %s: %v (%v)", id, r.Outcome, r.Err)
		}
	}
	inFileSD := func(id string) {
		t.Helper()
		for _, sd := range sds {
			await(t, 60*time.Second, "VM "+id+" in "+sd, func() error {
				b, err := os.ReadFile(filepath.Join(sd, "node.json"))
				if err != nil || !strings.Contains(string(b), `"127.0.0.`+id+`:9100"`) {
					return fmt.Errorf("node.json: %s %v", b, err)
				}
				return nil
			})
		}
	}
	// A resident source (the listener's and the bridge's delivery), open
	// across the loss.
	src, err := delivery.Open(delivery.Options{Conn: eventbus.ConnOptions{URL: c.urls(), User: eventbus.RoleHook, Password: c.pw[eventbus.RoleHook], CAFile: c.caFile()},
		SpoolDir: filepath.Join(t.TempDir(), "spool"), Timeout: 10 * time.Second, FlushInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srcCtx, stopSrc := context.WithCancel(context.Background())
	srcDone := make(chan error, 1)
	go func() { srcDone <- src.Run(srcCtx) }()
	t.Cleanup(func() { stopSrc(); <-srcDone; src.Close() })

	hook("1")
	inFileSD("1")

	gone := serveNode(t, c)
	c.nodes[gone].Shutdown()
	c.nodes[gone].WaitForShutdown()
	lost := time.Now()
	hook("2")
	if r := src.Publish(context.Background(), running(t, "3")); !r.Outcome.Safe() {
		t.Fatalf("resident source after the loss: %v (%v)", r.Outcome, r.Err)
	}
	inFileSD("2")
	inFileSD("3")
	t.Logf("node %d shut down: VMs 2 and 3 in both serves' file_sd %s later", gone, time.Since(lost).Round(time.Millisecond))

	alive := c.nodes[(gone+1)%3]
	_, js := natstest.ConnectRole(t, alive.ClientURL(), eventbus.RoleServe, c.pw[eventbus.RoleServe], c.tls())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != 3 {
		t.Fatalf("%s holds %d events, want the 3 the sources sent", eventbus.StreamEvents, n)
	}
	if cz, err := c.nodes[gone].Connz(nil); err != nil || cz.NumConns != 0 {
		t.Fatalf("node %d after its shutdown: %v %v", gone, cz, err)
	}
}
