package testenv

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Prometheus is a real Prometheus server (Debian `prometheus`) run as a
// child of the test process on a loopback port, with one scrape job
// "vmglue" that discovers its targets from the file_sd files of a
// directory (refresh every second, scrape every second). The targets of
// tests must be on 127.0.0.0/8: Prometheus connects to them.
type Prometheus struct {
	t testing.TB
	// URL is the web and API address, "http://127.0.0.1:<port>".
	URL string
	// Dir is the watched directory: every *.json in it is a file_sd file.
	Dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartPrometheus starts Prometheus watching sdDir/*.json and waits until
// /-/ready answers 200. It is stopped by PID in t.Cleanup.
func StartPrometheus(t testing.TB, sdDir string) *Prometheus {
	t.Helper()
	Need(t, "prometheus")
	dir := t.TempDir()
	port := FreePort(t)
	conf := fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 500ms, evaluation_interval: 1s}
scrape_configs:
  - job_name: vmglue
    file_sd_configs:
      - files: [%q]
        refresh_interval: 1s
`, filepath.Join(sdDir, "*.json"))
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &Prometheus{t: t, URL: fmt.Sprintf("http://127.0.0.1:%d", port), Dir: sdDir}
	out := &LogBuffer{}
	p.cmd = exec.Command("prometheus", "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--log.level=warn")
	p.cmd.Stdout, p.cmd.Stderr = out, out
	dieWithTest(p.cmd)
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	p.done = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	WaitFor(t, 60*time.Second, "prometheus ready", func() bool {
		select {
		case <-p.done:
			t.Fatalf("prometheus exited:\n%s", out.String())
		default:
		}
		resp, err := http.Get(p.URL + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

func (p *Prometheus) stop() { stopChild(p.cmd, p.done) }

// stopChild sends SIGTERM to a server the test started (by its PID) and
// waits until done is closed; SIGKILL after 20 s.
func stopChild(cmd *exec.Cmd, done <-chan struct{}) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// PromTarget is one active target of /api/v1/targets.
type PromTarget struct {
	ScrapeURL        string            `json:"scrapeUrl"`
	Labels           map[string]string `json:"labels"`
	DiscoveredLabels map[string]string `json:"discoveredLabels"`
}

// Targets returns the active targets Prometheus has discovered.
func (p *Prometheus) Targets() []PromTarget {
	p.t.Helper()
	resp, err := http.Get(p.URL + "/api/v1/targets?state=active")
	if err != nil {
		p.t.Fatalf("prometheus targets: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string `json:"status"`
		Data   struct {
			ActiveTargets []PromTarget `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Status != "success" {
		p.t.Fatalf("prometheus targets: %v %s", err, b)
	}
	return r.Data.ActiveTargets
}

// Target returns the active target whose address is addr ("127.0.0.1:9100")
// or nil.
func (p *Prometheus) Target(addr string) *PromTarget {
	p.t.Helper()
	for _, tg := range p.Targets() {
		if tg.DiscoveredLabels["__address__"] == addr {
			return &tg
		}
	}
	return nil
}

// WaitTarget waits (up to 30 s: discovery sends updates in 5-second
// batches) until the target at addr is present or, with present false,
// absent.
func (p *Prometheus) WaitTarget(addr string, present bool) *PromTarget {
	p.t.Helper()
	var got *PromTarget
	WaitFor(p.t, 30*time.Second, fmt.Sprintf("prometheus target %s present=%v", addr, present), func() bool {
		got = p.Target(addr)
		return (got != nil) == present
	})
	return got
}
