// Command hook measures what one run of vmglue-hook costs, as OpenNebula's
// HEM pays it: a fresh process per event, the VM on stdin through a closed
// pipe, until exit. It compares the hook (connect, publish, JetStream ack)
// with a static hello-world Go binary, the floor of any Go hook.
//
//	go run ./bench/hook -n 200                      # starts its own embedded nats-server
//	go run ./bench/hook -n 200 -url nats://127.0.0.1:4222   # against a running vmglue serve
//
// It prints p50 and p99 of both, their ratio and the difference of the p50s.
// It exits non-zero only on errors (a run that did not publish), never
// because a target is missed.
package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natsserver"
)

// vmTemplate is a realistic pretty-printed VM document (~5 KB) with "{{ID}}"
// where the VM id goes, so every run publishes a new event.
//
//go:embed vm.xml.tmpl
var vmTemplate string

func main() {
	n := flag.Int("n", 200, "runs of each binary")
	url := flag.String("url", "", "NATS URL of a running vmglue serve; empty: start an embedded provisioned server")
	hookPath := flag.String("hook", "", "vmglue-hook binary; empty: build it with CGO_ENABLED=0")
	helloPath := flag.String("hello", "", "hello binary; empty: build ./bench/hook/hello with CGO_ENABLED=0")
	cloud := flag.String("cloud", "bench", "cloud name of the published events")
	flag.Parse()
	if err := run(*n, *url, *hookPath, *helloPath, *cloud); err != nil {
		fmt.Fprintf(os.Stderr, "bench/hook: %v\n", err)
		os.Exit(1)
	}
}

func run(n int, url, hookPath, helloPath, cloud string) error {
	if n < 2 {
		return errors.New("-n must be at least 2")
	}
	tmp, err := os.MkdirTemp("", "bench-hook-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if hookPath == "" {
		if hookPath, err = build(tmp, "vmglue-hook", "github.com/vmglue/vmglue/cmd/vmglue-hook"); err != nil {
			return err
		}
	}
	if helloPath == "" {
		if helloPath, err = build(tmp, "hello", "github.com/vmglue/vmglue/bench/hook/hello"); err != nil {
			return err
		}
	}
	if url == "" {
		ns, err := natsserver.Start(natsserver.Options{Listen: "127.0.0.1:0", StoreDir: filepath.Join(tmp, "nats")})
		if err != nil {
			return err
		}
		defer ns.Shutdown()
		url = ns.ClientURL()
		if err := provision(url); err != nil {
			return err
		}
		fmt.Printf("no -url: started an embedded provisioned nats-server at %s (in this process)\n", url)
	} else {
		fmt.Printf("against %s\n", eventbus.RedactURL(url))
	}
	// GOMAXPROCS=1 as deploy/hook.env sets it for every hook run (hello
	// gets it too).
	env := append(os.Environ(), "VMGLUE_NATS_URL="+url, "VMGLUE_CLOUD="+cloud,
		"VMGLUE_SPOOL_DIR="+filepath.Join(tmp, "spool"), "GOMAXPROCS=1")
	// Distinct VM ids per bench run, so a second run is not all duplicates.
	base := int(time.Now().Unix()%100000) * 10000
	const warmup = 5
	var hook, hello, hookCPU, helloCPU []time.Duration
	for i := -warmup; i < n; i++ {
		input := []byte(base64.StdEncoding.EncodeToString([]byte(strings.ReplaceAll(vmTemplate, "{{ID}}", strconv.Itoa(base+i+warmup)))) + " running")
		// Alternate the two, so that machine noise hits both alike.
		dh, ch, out, err := timeRun(hookPath, env, input)
		if err != nil {
			return fmt.Errorf("hook run %d: %w", i, err)
		}
		if !strings.HasPrefix(out, "vmglue-hook: published ") {
			return fmt.Errorf("hook run %d did not publish: %q", i, strings.TrimSpace(out))
		}
		dw, cw, _, err := timeRun(helloPath, env, input)
		if err != nil {
			return fmt.Errorf("hello run %d: %w", i, err)
		}
		if i >= 0 {
			hook, hello = append(hook, dh), append(hello, dw)
			hookCPU, helloCPU = append(hookCPU, ch), append(helloCPU, cw)
		}
	}
	report(n, len(vmTemplate), hook, hello)
	// CPU time (user + system) hardly depends on the load of the machine.
	fmt.Printf("cpu time p50: hello %s, hook %s (%.2fx)\n", ms(percentile(helloCPU, 50)), ms(percentile(hookCPU, 50)),
		float64(percentile(hookCPU, 50))/float64(percentile(helloCPU, 50)))
	return nil
}

// build compiles a static binary of pkg into dir.
func build(dir, name, pkg string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// provision creates vmglue's streams on the embedded server.
func provision(url string) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return fmt.Errorf("connect %s: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return eventbus.Provision(ctx, js, eventbus.ProvisionOptions{})
}

// timeRun starts path with input in a closed pipe on stdin, as HEM does, and
// returns the time from start to exit, the CPU time of the process and what
// it printed.
func timeRun(path string, env []string, input []byte) (wall, cpu time.Duration, out string, err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, 0, "", err
	}
	defer r.Close()
	// The input (a few KB) fits in the pipe buffer: write it all and close.
	if _, err := w.Write(input); err != nil {
		w.Close()
		return 0, 0, "", err
	}
	w.Close()
	var buf bytes.Buffer
	cmd := exec.Command(path)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, r, &buf, &buf
	start := time.Now()
	err = cmd.Run()
	wall = time.Since(start)
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return wall, cpu, buf.String(), fmt.Errorf("%s: %w: %s", filepath.Base(path), err, strings.TrimSpace(buf.String()))
	}
	return wall, cpu, buf.String(), nil
}

// report prints the percentiles and the comparison.
func report(n, docSize int, hook, hello []time.Duration) {
	h50, h99 := percentile(hook, 50), percentile(hook, 99)
	w50, w99 := percentile(hello, 50), percentile(hello, 99)
	fmt.Printf("%d runs each, sequential, fresh process per run, stdin = base64 of a %d-byte VM + \" running\"\n", n, docSize)
	fmt.Printf("%-34s p50 %7s  p99 %7s\n", "hello (static Go, CGO_ENABLED=0)", ms(w50), ms(w99))
	fmt.Printf("%-34s p50 %7s  p99 %7s\n", "vmglue-hook (publish + ack)", ms(h50), ms(h99))
	fmt.Printf("ratio hook/hello: p50 %.2fx  p99 %.2fx\n", float64(h50)/float64(w50), float64(h99)/float64(w99))
	fmt.Printf("hook p50 - hello p50: %s\n", ms(h50-w50))
	fmt.Printf("target (p50 <= 10 ms = 2x a ~5 ms fresh-process publish, p99 <= 15 ms): p50 %s, p99 %s\n",
		verdict(h50 <= 10*time.Millisecond), verdict(h99 <= 15*time.Millisecond))
}

// percentile is the nearest-rank percentile p of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}
