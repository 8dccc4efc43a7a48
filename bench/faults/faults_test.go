// Package faults is issue 16's fault suite: vmglue on a 3-node NATS
// JetStream cluster (three nats-server processes built from the
// nats-server module go.mod already requires, each with its own store),
// `vmglue serve` processes (the built binary) with every node's URL and
// replicas 3, the dns worker on a real BIND, and the real vmglue-hook as
// OpenNebula runs it. Every process is a child of the test, on loopback,
// stopped by its pid. The cases:
//
//   - nats-node-kill: hooks at a fixed rate while the event stream's
//     leader node is SIGKILLed and restarted on the same store;
//   - serve-kill: one of two serve processes SIGKILLed mid-burst;
//   - serve-pause: one serve SIGSTOPped past its VM lease, then resumed;
//   - throughput: the same burst with one and with two serve processes.
//
// Each checks that every event is stored once (stream messages counted per
// event id), that both zones hold exactly every VM's records at the end
// (AXFR), that BIND's journal added each record once and deleted none (no
// side effect applied twice), and prints one figures line starting with
// "fault ". `go test` (make test) runs them small: 50 hook runs/s for 5 s,
// bursts of 200 VMs. `make bench-faults` runs them full size (200 runs/s
// for 30 s, bursts of 2000) and prints the table:
//
//	go test -count=1 -v -run TestFaults -timeout 30m ./bench/faults \
//	    -args -rate 200 -duration 30s -burst 2000 [-vmglue bin/vmglue -hook bin/vmglue-hook]
//
// Without -vmglue / -hook / -nats-server it builds the binaries first.
// When the machine cannot start hooks at the asked rate, the line shows
// the rate achieved.
package faults

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmglue/vmglue/internal/testenv"
)

var (
	rate     = flag.Float64("rate", 50, "hook runs started per second in nats-node-kill")
	duration = flag.Duration("duration", 5*time.Second, "how long nats-node-kill starts hooks")
	burst    = flag.Int("burst", 200, "VMs in the bursts of serve-kill and throughput")
	vmglueF  = flag.String("vmglue", "", "vmglue binary; empty: build ./cmd/vmglue")
	hookF    = flag.String("hook", "", "vmglue-hook binary; empty: build ./cmd/vmglue-hook")
	natsF    = flag.String("nats-server", "", "nats-server binary; empty: build the required module's")
)

// The binaries every case runs.
var vmglueBin, hookBin, natsServerBin string

var (
	rowsMu sync.Mutex
	rows   []string
)

// row records a case's figures line for the table TestMain prints.
func row(format string, args ...any) {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	rows = append(rows, "fault "+fmt.Sprintf(format, args...))
}

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "vmglue-faults")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		for _, b := range []struct {
			out  *string
			flag string
			pkg  string
		}{
			{&vmglueBin, *vmglueF, "github.com/vmglue/vmglue/cmd/vmglue"},
			{&hookBin, *hookF, "github.com/vmglue/vmglue/cmd/vmglue-hook"},
			{&natsServerBin, *natsF, testenv.NATSServerPkg},
		} {
			if b.flag != "" {
				*b.out = b.flag
				continue
			}
			var err error
			if b.pkg == testenv.NATSServerPkg {
				*b.out, err = testenv.BuildNATSServer(dir)
			} else {
				*b.out, err = testenv.BuildBinary(b.pkg, dir)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		code := m.Run()
		if len(rows) > 0 {
			fmt.Printf("\nfault suite (hooks %.0f/s for %s, bursts of %d VMs; one row per case):\n%s\n",
				*rate, *duration, *burst, strings.Join(rows, "\n"))
		}
		return code
	}()
	os.Exit(code)
}

func TestFaults(t *testing.T) {
	testenv.Need(t, "named", "named-journalprint")
	if *rate <= 0 || *duration <= 0 || *burst < 3 {
		t.Fatalf("-rate %v -duration %s -burst %d: want a positive rate and duration, at least 3 VMs", *rate, *duration, *burst)
	}
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"nats-node-kill", testNATSNodeKill},
		{"serve-kill", testServeKill},
		{"serve-pause", testServePause},
		{"throughput", testThroughput},
	}
	for _, c := range cases {
		t.Run(c.name, c.run)
	}
}
