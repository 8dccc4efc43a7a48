// Package dnsbench measures issue 3's burst: 1,000 VMs created and then
// deleted, each event a fresh hook process run 10 at a time as OpenNebula's
// HEM runs them, until every A and PTR record resolves (and then is gone).
// It compares
//
//   - vmglue: the built `vmglue-hook` publishing to a `vmglue serve`
//     subprocess (embedded NATS, dns worker) that batches RFC 2136 updates
//     into a real BIND,
//   - vmglue listen: the same VMs' state changes sent on a ZeroMQ PUB
//     socket exactly as oned's one_hm sends them (hooks/opennebula/onedtest:
//     oned cannot run here), read by a `vmglue listen opennebula`
//     subprocess that publishes to a fresh `vmglue serve` and BIND; then
//     single events, one at a time, from the PUB to the A record
//     resolvable (p50), with
//   - shell+nsupdate: legacy-hook.sh per event (bash, base64, grep, sed and
//     one nsupdate process with two sends) against a second, fresh BIND.
//
// Only a benchmark lives here, so `go test ./...` runs nothing. Run it with
// `make bench-dns`, or:
//
//	go test -run '^$' -bench BenchmarkDNSBurst -benchtime 1x -timeout 30m ./bench/dns \
//	    -args -vmglue $PWD/bin/vmglue -hook $PWD/bin/vmglue-hook [-vms 1000] [-hooks 10]
//
// -serve-cpuprofile DIR writes CPU profiles of both serve processes;
// -listen-only runs the listener's row alone (for profiling: no ratio).
//
// Without -vmglue / -hook it builds both binaries first. The last two lines
// it prints are the summaries with the ratio of the create+delete times
// against the shell baseline: the hook's, then the listener's.
package dnsbench

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
)

var (
	vmglueBin  = flag.String("vmglue", "", "vmglue binary (absolute path); empty: build ./cmd/vmglue")
	hookBin    = flag.String("hook", "", "vmglue-hook binary (absolute path); empty: build ./cmd/vmglue-hook")
	numVMs     = flag.Int("vms", 1000, "VMs created and then deleted")
	numHooks   = flag.Int("hooks", 10, "hooks run at once (HEM's concurrency)")
	timeout    = flag.Duration("phase-timeout", 10*time.Minute, "give up on a phase after this long")
	onlyListen = flag.Bool("listen-only", false, "run the listener's row alone (no hook row, no shell baseline, no ratio): to profile serve")
	profDir    = flag.String("serve-cpuprofile", "", "directory for CPU profiles of the vmglue serve processes (serve-hook.pprof, serve-listen.pprof)")
)

const (
	forwardZone = "cloud.test."
	reverseZone = "10.in-addr.arpa."
	pollEvery   = 5 * time.Millisecond
	pollWindow  = 16 // pending records queried per poll round
	pollers     = 4  // goroutines (one UDP socket each) querying BIND
)

func BenchmarkDNSBurst(b *testing.B) {
	testenv.Need(b, "named", "nsupdate", "bash", "base64", "grep", "sed")
	if *numVMs < 1 || *numVMs > 250*256 || *numHooks < 1 {
		b.Fatalf("-vms %d -hooks %d: want 1..64000 VMs and at least 1 hook", *numVMs, *numHooks)
	}
	// One run whatever b.N is: a burst of 1,000 VMs is the unit measured.
	vmglue, hook := binaries(b)
	script, err := filepath.Abs("legacy-hook.sh")
	if err != nil {
		b.Fatal(err)
	}

	t0 := time.Now().Unix()
	vms := make([]testenv.OneVM, *numVMs)
	for i := range vms {
		vms[i] = testenv.OneVM{ID: 1000 + i, Name: fmt.Sprintf("vm%05d", i),
			IP: fmt.Sprintf("10.20.%d.%d", i/250, i%250+1), State: 3, LCM: 3, Time: t0}
	}
	runningVMs := slices.Clone(vms)
	running := stdins(vms, "running")
	for i := range vms {
		vms[i].State, vms[i].LCM, vms[i].Time = 6, 0, t0+60
	}
	done := stdins(vms, "done")
	zones := testenv.BINDOptions{Zones: []string{forwardZone, reverseZone}}

	if *onlyListen {
		listenRow(b, vmglue, runningVMs, vms, zones)
		return
	}
	// vmglue: hook -> NATS JetStream -> dns worker -> BIND.
	bind := testenv.StartBIND(b, zones)
	url, dataDir, servePID := startServe(b, vmglue, bind, "hook")
	daemons := map[string]int{"vmglue serve": servePID, "named": bindPID(b, bind)}
	spool := b.TempDir()
	runHook := func(stdin []byte) *exec.Cmd {
		cmd := exec.Command(hook)
		// The environment of deploy/hook.env.
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "VMGLUE_CLOUD=one", "VMGLUE_NATS_URL=" + url,
			"VMGLUE_SPOOL_DIR=" + spool, "GOMAXPROCS=1",
			"VMGLUE_NATS_USER=" + eventbus.RoleHook, "VMGLUE_NATS_PASSWORD_FILE=" + eventbus.CredentialPath(dataDir, eventbus.RoleHook)}
		cmd.Stdin = bytes.NewReader(stdin)
		return cmd
	}
	fmt.Printf("dns burst: %d VMs (A + PTR each), %d hooks at a time, BIND %s\n", len(vms), *numHooks, bind.Addr)
	vc := measure(b, "vmglue create", bind, vms, running, runHook, true, daemons)
	vd := measure(b, "vmglue delete", bind, vms, done, runHook, false, daemons)
	if n := testenv.Spooled(b, spool); n != 0 {
		b.Errorf("vmglue-hook spooled %d events (NATS unreachable?)", n)
	}
	serveFigures(b, "vmglue serve (hook burst):", servePID, vc, vd, 2*len(vms))

	// vmglue: oned's ZeroMQ stream -> vmglue listen -> NATS JetStream -> dns worker -> BIND.
	lr := listenRow(b, vmglue, runningVMs, vms, zones)

	// Today: a shell hook with nsupdate per event, against a fresh BIND.
	legacy := testenv.StartBIND(b, zones)
	keyfile := filepath.Join(b.TempDir(), "dns-update.key")
	key := fmt.Sprintf("key %q { algorithm %s; secret %q; };\n", legacy.KeyName, legacy.Algorithm, legacy.Secret)
	if err := os.WriteFile(keyfile, []byte(key), 0o600); err != nil {
		b.Fatal(err)
	}
	host, port, _ := strings.Cut(legacy.Addr, ":")
	runShell := func(stdin []byte) *exec.Cmd {
		cmd := exec.Command("bash", script)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DNS_SERVER=" + host, "DNS_PORT=" + port,
			"KEYFILE=" + keyfile, "DOMAIN=" + strings.TrimSuffix(forwardZone, "."),
			"REVZONE=" + strings.TrimSuffix(reverseZone, ".")}
		cmd.Stdin = bytes.NewReader(stdin)
		return cmd
	}
	lc := measure(b, "shell+nsupdate create", legacy, vms, running, runShell, true, map[string]int{"named": bindPID(b, legacy)})
	ld := measure(b, "shell+nsupdate delete", legacy, vms, done, runShell, false, map[string]int{"named": bindPID(b, legacy)})

	vTotal, lTotal := vc.total+vd.total, lc.total+ld.total
	ratio := lTotal.Seconds() / vTotal.Seconds()
	b.ReportMetric(vTotal.Seconds(), "vmglue-s")
	b.ReportMetric(lTotal.Seconds(), "shell-s")
	b.ReportMetric(ratio, "ratio-x")
	b.ReportMetric(float64(vc.afterLast.Milliseconds()), "converge-ms")
	fmt.Printf("vmglue: create %s + delete %s; shell+nsupdate: create %s + delete %s\n",
		secs(vc.total), secs(vd.total), secs(lc.total), secs(ld.total))
	fmt.Printf("vmglue burst converged within %d ms of the last hook's exit (create; delete: %d ms; target <= 1000 ms)\n",
		vc.afterLast.Milliseconds(), vd.afterLast.Milliseconds())
	fmt.Printf("vmglue %s, shell+nsupdate %s, ratio %.1fx (create+delete, %d VMs, %d concurrent hooks)\n",
		secs(vTotal), secs(lTotal), ratio, len(vms), *numHooks)
	// The listener's row, last: make bench-dns repeats the last ratio line.
	sTotal := lr.create.total + lr.delete.total
	sRatio := lTotal.Seconds() / sTotal.Seconds()
	b.ReportMetric(sTotal.Seconds(), "listen-s")
	b.ReportMetric(sRatio, "listen-ratio-x")
	b.ReportMetric(ms(lr.p50), "listen-p50-ms")
	fmt.Printf("vmglue listen: create %s + delete %s; single event PUB to resolvable p50 %.1f ms\n",
		secs(lr.create.total), secs(lr.delete.total), ms(lr.p50))
	fmt.Printf("vmglue listen burst converged within %d ms of the last event sent (create; delete: %d ms; target <= 1000 ms)\n",
		lr.create.afterLast.Milliseconds(), lr.delete.afterLast.Milliseconds())
	fmt.Printf("vmglue listen %s, shell+nsupdate %s, ratio %.1fx (create+delete, %d VMs, oned's ZeroMQ stream)\n",
		secs(sTotal), secs(lTotal), sRatio, len(vms))
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

// binaries returns the vmglue and vmglue-hook binaries: the flags', or fresh
// builds.
func binaries(b *testing.B) (vmglue, hook string) {
	vmglue, hook = *vmglueBin, *hookBin
	dir := ""
	for _, p := range []struct {
		path *string
		pkg  string
	}{{&vmglue, "github.com/vmglue/vmglue/cmd/vmglue"}, {&hook, "github.com/vmglue/vmglue/cmd/vmglue-hook"}} {
		if *p.path != "" {
			if _, err := os.Stat(*p.path); err != nil {
				b.Fatal(err)
			}
			continue
		}
		if dir == "" {
			dir = b.TempDir()
		}
		out, err := testenv.BuildBinary(p.pkg, dir)
		if err != nil {
			b.Fatal(err)
		}
		*p.path = out
	}
	return vmglue, hook
}

func stdins(vms []testenv.OneVM, word string) [][]byte {
	out := make([][]byte, len(vms))
	for i, v := range vms {
		out[i] = testenv.HookStdin(testenv.OneVMXML(v), word)
	}
	return out
}

// startServe runs `vmglue serve` with the dns worker pointed at bind, an
// embedded NATS on a free port and a fresh data directory, waits until it
// logs that it is ready and returns the NATS URL, the data directory (with
// the role credentials) and its pid. b.Cleanup stops it.
func startServe(b *testing.B, bin string, bind *testenv.BIND, label string) (string, string, int) {
	dir := b.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
	cfg := fmt.Sprintf(`log: {level: info, format: json}
nats:
  embedded: {listen: %q, data_dir: %q}
workers:
  dns:
    servers: [%q]
    tsig: {name: %s, algorithm: %s, secret_file: %q}
    forward_zones: [%s]
    reverse_zones: [%s]
`, listen, filepath.Join(dir, "data"), bind.Addr, bind.KeyName, bind.Algorithm, bind.SecretPath, forwardZone, reverseZone)
	cfgPath := filepath.Join(dir, "vmglue.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	logPath := filepath.Join(dir, "serve.log")
	log, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()
	args := []string{"serve", "--config", cfgPath, "--metrics-listen", ""}
	if *profDir != "" {
		args = append(args, "--cpuprofile", filepath.Join(*profDir, "serve-"+label+".pprof"))
	}
	cmd := exec.Command(bin, args...)
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
		if text, _ := os.ReadFile(logPath); b.Failed() || bytes.Contains(text, []byte(`"level":"error"`)) {
			b.Logf("vmglue serve log (tail):\n%s", tailText(text, 30))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		text, _ := os.ReadFile(logPath)
		if bytes.Contains(text, []byte(`"vmglue serve ready"`)) {
			return "nats://" + listen, filepath.Join(dir, "data"), cmd.Process.Pid
		}
		select {
		case <-exited:
			b.Fatalf("vmglue serve exited: %s\n%s", cmd.ProcessState, tailText(text, 30))
		case <-ctx.Done():
			b.Fatalf("vmglue serve not ready after 2m:\n%s", tailText(text, 30))
		case <-tick.C:
		}
	}
}

func tailText(text []byte, lines int) string {
	l := strings.Split(strings.TrimRight(string(text), "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// result is one phase: hooks fired, records converged.
type result struct {
	total     time.Duration // first hook start until every record verified
	hooks     time.Duration // first hook start until the last hook exited
	afterLast time.Duration // last hook exit until every record verified
	serveCPU  time.Duration // CPU time vmglue serve used in the phase
}

// measure runs one hook process per VM (stdin[i]), *numHooks at a time, and
// polls bind from the first hook start until every VM's A and PTR record
// resolves (present) or is gone (!present). Then it checks every record
// once more.
func measure(b *testing.B, name string, bind *testenv.BIND, vms []testenv.OneVM, stdin [][]byte,
	newCmd func([]byte) *exec.Cmd, present bool, daemons map[string]int) result {
	ph := startPhase(b, bind, vms, present, daemons)
	defer ph.close()
	durs := make([]time.Duration, len(vms))
	var (
		hookCPU  time.Duration
		mu       sync.Mutex
		lastExit time.Time
		failures []string
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, *numHooks)
	for i := range vms {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cmd := newCmd(stdin[i])
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			t := time.Now()
			err := cmd.Run()
			end := time.Now()
			durs[i] = end.Sub(t)
			mu.Lock()
			defer mu.Unlock()
			if end.After(lastExit) {
				lastExit = end
			}
			if cmd.ProcessState != nil {
				hookCPU += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			}
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s: %v: %s", vms[i].Name, err, strings.TrimSpace(stderr.String())))
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		ph.cancel()
		b.Fatalf("%s: %d of %d hooks failed, first: %s", name, len(failures), len(vms), failures[0])
	}
	r, daemonText := ph.finish(b, name, lastExit)
	slices.Sort(durs)
	fmt.Printf("%-22s %7s  (hooks %s, p50 %.1f ms, p99 %.1f ms per hook; all %d A+PTR %s %+d ms after the last hook's exit)\n",
		name+":", secs(r.total), secs(r.hooks), ms(durs[len(durs)/2]), ms(durs[len(durs)*99/100]),
		len(ph.checks), ph.state(), r.afterLast.Milliseconds())
	fmt.Printf("%-22s CPU: hook processes %s (%.1f ms per hook), %s\n", "", secs(hookCPU),
		ms(hookCPU)/float64(len(vms)), daemonText)
	return r
}

// phase polls bind, from its start, until every VM's A and PTR record
// resolves (present) or is gone (!present), and counts the daemons' CPU.
type phase struct {
	checks    []check
	present   bool
	p         *poller
	ctx       context.Context
	cancel    context.CancelFunc
	start     time.Time
	conv      chan converged
	daemons   map[string]int
	daemonCPU map[string]time.Duration
	done      bool // conv was received
}

type converged struct {
	at      time.Time
	pending int
}

func startPhase(b *testing.B, bind *testenv.BIND, vms []testenv.OneVM, present bool, daemons map[string]int) *phase {
	checks := make([]check, 0, 2*len(vms))
	for _, v := range vms {
		fqdn := v.Name + "." + forwardZone
		rev, err := mdns.ReverseAddr(v.IP)
		if err != nil {
			b.Fatal(err)
		}
		want, wantRev := v.IP, fqdn
		if !present {
			want, wantRev = "", ""
		}
		checks = append(checks, check{fqdn, mdns.TypeA, want}, check{rev, mdns.TypePTR, wantRev})
	}
	ph := &phase{checks: checks, present: present, p: newPoller(bind.Addr), conv: make(chan converged, 1),
		daemons: daemons, daemonCPU: cpuOf(daemons)}
	ph.ctx, ph.cancel = context.WithTimeout(context.Background(), *timeout)
	ph.start = time.Now()
	go func() {
		at, pending := ph.p.wait(ph.ctx, checks)
		ph.conv <- converged{at, pending}
	}()
	return ph
}

// close stops the polling (waiting for it) and the poller.
func (ph *phase) close() {
	ph.cancel()
	if !ph.done {
		<-ph.conv
	}
	ph.p.close()
}

func (ph *phase) state() string {
	if ph.present {
		return "resolve"
	}
	return "are gone"
}

// finish waits for the records and checks them once more; last is when the
// last event left its source. It returns the times and the daemons' CPU.
func (ph *phase) finish(b *testing.B, name string, last time.Time) (result, string) {
	c := <-ph.conv
	ph.done = true
	if c.pending > 0 {
		b.Fatalf("%s: %d of %d records not converged after %s", name, c.pending, len(ph.checks), *timeout)
	}
	r := result{total: c.at.Sub(ph.start), hooks: last.Sub(ph.start), afterLast: c.at.Sub(last)}
	var daemonText []string
	for name, d := range cpuOf(ph.daemons) {
		daemonText = append(daemonText, fmt.Sprintf("%s %s", name, secs(d-ph.daemonCPU[name])))
		if name == "vmglue serve" {
			r.serveCPU = d - ph.daemonCPU[name]
		}
	}
	slices.Sort(daemonText)
	if bad := ph.p.verify(ph.checks); len(bad) > 0 {
		b.Fatalf("%s: %d records wrong in the final check, first: %s", name, len(bad), bad[0])
	}
	return r, strings.Join(daemonText, ", ")
}

// cpuOf returns the user+system CPU time each of the processes pids used
// so far.
func cpuOf(pids map[string]int) map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, pid := range pids {
		text, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the ")" closing the command: state is the 1st,
		// utime the 12th, stime the 13th (in clock ticks, 100 per second).
		f := strings.Fields(string(text[bytes.LastIndexByte(text, ')')+1:]))
		if len(f) < 13 {
			continue
		}
		var ut, st int64
		_, _ = fmt.Sscan(f[11], &ut)
		_, _ = fmt.Sscan(f[12], &st)
		out[name] = time.Duration(ut+st) * 10 * time.Millisecond
	}
	return out
}

// bindPID reads the pid named wrote into its directory.
func bindPID(b *testing.B, bind *testenv.BIND) int {
	text, err := os.ReadFile(filepath.Join(bind.Dir, "named.pid"))
	if err != nil {
		b.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscan(string(text), &pid); err != nil {
		b.Fatalf("named.pid: %v", err)
	}
	return pid
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// check is one record: name and type resolve to want ("" = no such record).
type check struct {
	name  string
	qtype uint16
	want  string
}

func (c check) String() string {
	return fmt.Sprintf("%s %s want %q", c.name, mdns.TypeToString[c.qtype], c.want)
}

// poller queries BIND from a few goroutines, one UDP socket each.
type poller struct {
	addr string
	jobs chan job
	wg   sync.WaitGroup
}

type job struct {
	c    check
	ok   *bool
	done *sync.WaitGroup
}

func newPoller(addr string) *poller {
	p := &poller{addr: addr, jobs: make(chan job)}
	for range pollers {
		p.wg.Add(1)
		go p.run()
	}
	return p
}

func (p *poller) close() {
	close(p.jobs)
	p.wg.Wait()
}

func (p *poller) run() {
	defer p.wg.Done()
	client := &mdns.Client{Net: "udp", Timeout: 2 * time.Second}
	var conn *mdns.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for j := range p.jobs {
		*j.ok = false
		if conn == nil {
			c, err := client.Dial(p.addr)
			if err != nil {
				j.done.Done()
				continue
			}
			conn = c
		}
		m := new(mdns.Msg)
		m.SetQuestion(j.c.name, j.c.qtype)
		m.RecursionDesired = false
		r, _, err := client.ExchangeWithConn(m, conn)
		if err != nil { // a late or lost answer: start afresh
			conn.Close()
			conn = nil
		} else {
			*j.ok = matches(r, j.c)
		}
		j.done.Done()
	}
}

func matches(r *mdns.Msg, c check) bool {
	if r.Rcode != mdns.RcodeSuccess && r.Rcode != mdns.RcodeNameError {
		return false
	}
	var got []string
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == c.qtype {
			got = append(got, strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
	}
	if c.want == "" {
		return len(got) == 0
	}
	return slices.Equal(got, []string{c.want})
}

// query runs checks in parallel and returns which hold.
func (p *poller) query(checks []check) []bool {
	ok := make([]bool, len(checks))
	var wg sync.WaitGroup
	wg.Add(len(checks))
	for i, c := range checks {
		p.jobs <- job{c, &ok[i], &wg}
	}
	wg.Wait()
	return ok
}

// wait polls until every check holds and returns when the last one was
// verified, or ctx's end and how many still fail. A record once verified is
// not asked again: the hooks only ever add (or only ever delete). A round
// asks the first pollWindow pending records in order, in parallel; when all
// of them hold the next round follows at once, otherwise pollEvery later.
// After a round without progress only the first pending record is asked
// until it holds, so the polling costs BIND (and the CPUs the hooks need)
// about 200 queries a second while records trickle in.
func (p *poller) wait(ctx context.Context, checks []check) (time.Time, int) {
	pending := slices.Clone(checks)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	w := pollWindow
	for len(pending) > 0 {
		w = min(w, len(pending))
		ok := p.query(pending[:w])
		kept := pending[:0]
		for i, c := range pending {
			if i >= w || !ok[i] {
				kept = append(kept, c)
			}
		}
		verified := len(pending) - len(kept)
		pending = kept
		switch {
		case verified == w:
			w = pollWindow
			continue
		case verified == 0:
			w = 1
		default:
			w = pollWindow
		}
		select {
		case <-ctx.Done():
			return time.Now(), len(pending)
		case <-tick.C:
		}
	}
	return time.Now(), 0
}

// verify checks every record once more and returns those that fail.
func (p *poller) verify(checks []check) []string {
	var bad []string
	for i := 0; i < len(checks); i += 64 {
		part := checks[i:min(i+64, len(checks))]
		for j, ok := range p.query(part) {
			if !ok {
				bad = append(bad, part[j].String())
			}
		}
	}
	return bad
}
