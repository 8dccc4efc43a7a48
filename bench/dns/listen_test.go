package dnsbench

import (
	"bytes"
	"context"
	"fmt"
	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/vmglue/vmglue/hooks/opennebula"
	"github.com/vmglue/vmglue/hooks/opennebula/onedtest"
	"github.com/vmglue/vmglue/internal/testenv"
)

// latencySamples is how many single events measure PUB → record resolvable.
const latencySamples = 25

// streamRow is the listener's row: the burst's create and delete, and the
// single event latency.
type streamRow struct {
	create, delete result
	p50            time.Duration
}

// oneMsg is one state change as one_hm sends it: every key with the frame.
type oneMsg struct {
	keys  []string
	frame []byte
}

func messages(b *testing.B, vms []testenv.OneVM) []oneMsg {
	out := make([]oneMsg, len(vms))
	for i, v := range vms {
		keys, frame, err := onedtest.Message(testenv.OneVMXML(v))
		if err != nil {
			b.Fatal(err)
		}
		out[i] = oneMsg{keys, frame}
	}
	return out
}

// listenRow runs the burst through oned's ZeroMQ stream: a fresh BIND and
// `vmglue serve`, `vmglue listen opennebula` subscribed to the one_hm
// stand-in (onedtest: oned cannot run here; it sends what one_hm sends,
// both keys of every change), the running then the done state of every VM
// sent as fast as the socket takes them, then single events one at a time.
func listenRow(b *testing.B, vmglue string, running, done []testenv.OneVM, zones testenv.BINDOptions) streamRow {
	bind := testenv.StartBIND(b, zones)
	url, dataDir, servePID := startServe(b, vmglue, bind, "listen")
	oned := onedtest.Start(b)
	pw, err := eventbus.ReadSecret(eventbus.CredentialPath(dataDir, eventbus.RoleHook), "")
	if err != nil {
		b.Fatal(err)
	}
	listenPID := startListen(b, vmglue, natstest.RoleURL(url, eventbus.RoleHook, pw), oned)
	daemons := map[string]int{"vmglue serve": servePID, "vmglue listen": listenPID, "named": bindPID(b, bind)}
	var row streamRow
	row.create = measureStream(b, "vmglue listen create", bind, running, messages(b, running), oned, true, daemons)
	row.delete = measureStream(b, "vmglue listen delete", bind, done, messages(b, done), oned, false, daemons)
	serveFigures(b, "vmglue serve (listen burst):", servePID, row.create, row.delete, 2*len(done))

	lat := make([]testenv.OneVM, latencySamples)
	for i := range lat {
		lat[i] = testenv.OneVM{ID: 900000 + i, Name: fmt.Sprintf("lat%03d", i), IP: fmt.Sprintf("10.30.0.%d", i+1),
			State: 3, LCM: 3, Time: time.Now().Unix()}
	}
	durs := make([]time.Duration, len(lat))
	client := &mdns.Client{Net: "udp", Timeout: time.Second}
	for i, m := range messages(b, lat) {
		c := check{lat[i].Name + "." + forwardZone, mdns.TypeA, lat[i].IP}
		start := time.Now()
		send(b, oned, m)
		for {
			q := new(mdns.Msg)
			q.SetQuestion(c.name, c.qtype)
			q.RecursionDesired = false
			if r, _, err := client.Exchange(q, bind.Addr); err == nil && matches(r, c) {
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatalf("single event: %s not resolvable after 1m", c)
			}
			time.Sleep(time.Millisecond)
		}
		durs[i] = time.Since(start)
	}
	slices.Sort(durs)
	row.p50 = durs[len(durs)/2]
	fmt.Printf("%-22s single event, PUB to A record resolvable: p50 %.1f ms, max %.1f ms (%d events one at a time)\n",
		"vmglue listen:", ms(row.p50), ms(durs[len(durs)-1]), len(durs))
	return row
}

func send(b *testing.B, oned *onedtest.Oned, m oneMsg) {
	for _, k := range m.keys {
		if err := oned.Send(k, m.frame); err != nil {
			b.Fatal(err)
		}
	}
}

// measureStream sends every message as oned would and polls bind until
// every record resolves (or is gone).
func measureStream(b *testing.B, name string, bind *testenv.BIND, vms []testenv.OneVM, msgs []oneMsg,
	oned *onedtest.Oned, present bool, daemons map[string]int) result {
	ph := startPhase(b, bind, vms, present, daemons)
	defer ph.close()
	for _, m := range msgs {
		send(b, oned, m)
	}
	r, daemonText := ph.finish(b, name, time.Now())
	fmt.Printf("%-22s %7s  (events sent in %s; all %d A+PTR %s %+d ms after the last event)\n",
		name+":", secs(r.total), secs(r.hooks), len(ph.checks), ph.state(), r.afterLast.Milliseconds())
	fmt.Printf("%-22s CPU: %s\n", "", daemonText)
	return r
}

// startListen runs `vmglue listen opennebula` against oned and NATS at url
// until the benchmark ends, and returns its pid once it is subscribed.
func startListen(b *testing.B, bin, url string, oned *onedtest.Oned) int {
	dir := b.TempDir()
	cfg := fmt.Sprintf("log: {level: info, format: json}\nnats: {url: %q}\nlisten:\n  opennebula:\n"+
		"    endpoint: %q\n    spool_dir: %q\n    sweep_interval: -1s\n", url, oned.Endpoint, filepath.Join(dir, "spool"))
	cfgPath := filepath.Join(dir, "vmglue.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	logPath := filepath.Join(dir, "listen.log")
	log, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(bin, "listen", "opennebula", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		text, _ := os.ReadFile(logPath)
		if b.Failed() || bytes.Contains(text, []byte(`"level":"error"`)) || bytes.Contains(text, []byte(`"spooled"`)) {
			b.Logf("vmglue listen log (tail):\n%s", tailText(text, 30))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for !oned.Subscribed(opennebula.StateKeyPrefix) {
		select {
		case <-exited:
			text, _ := os.ReadFile(logPath)
			b.Fatalf("vmglue listen exited: %s\n%s", cmd.ProcessState, tailText(text, 30))
		case <-ctx.Done():
			b.Fatal("vmglue listen not subscribed after 1m")
		case <-time.After(pollEvery):
		}
	}
	return cmd.Process.Pid
}
