package serve

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/catalog"
	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/lb"
	"github.com/vmglue/vmglue/internal/worker"
)

// plainTarget has no resync interval of its own.
type plainTarget struct{}

func (plainTarget) Name() string                                 { return "plain" }
func (plainTarget) Desired(*eventbus.VM) (worker.Objects, error) { return worker.Objects{}, nil }
func (plainTarget) Apply(context.Context, worker.Request) (worker.Objects, error) {
	return worker.Objects{}, nil
}

// The more specific setting wins: workers.lb.resync_interval (or the lb
// worker's own default) over runtime.resync_interval, which applies to a
// target without an interval of its own.
func TestMoreSpecificResyncWins(t *testing.T) {
	const lbSection = "  lb:\n    instances: [{name: lb1, address: \"unix:/run/haproxy/admin.sock\"}]\n"
	tests := []struct {
		name, yaml string
		worker     string // "" = a target without ResyncInterval
		want       time.Duration
	}{
		{"lb's own", "runtime: {resync_interval: 1m}\nworkers:\n" + lbSection + "    resync_interval: 10s\n", "lb", 10 * time.Second},
		{"lb's default", "runtime: {resync_interval: 1m}\nworkers:\n" + lbSection, "lb", lb.DefaultResyncInterval},
		{"runtime's", "runtime: {resync_interval: 1m}\n", "", time.Minute},
		{"runtime's default", "log: {level: info}\n", "", worker.DefaultResyncInterval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(p)
			if err != nil {
				t.Fatal(err)
			}
			var tg worker.Target = plainTarget{}
			if tt.worker != "" {
				cw, ok := catalog.Lookup(tt.worker)
				if !ok {
					t.Fatalf("no worker %s in the catalog", tt.worker)
				}
				if tg, err = cw.New(cfg.Workers[tt.worker], worker.Deps{Log: zerolog.Nop()}); err != nil {
					t.Fatal(err)
				}
			}
			if got := targetOptions(cfg, tg).ResyncInterval; got != tt.want {
				t.Fatalf("resync interval %s, want %s", got, tt.want)
			}
		})
	}
}

// runtime.verify_intervals.<worker> wins over runtime.verify_interval;
// periodic verification is off by default.
func TestMoreSpecificVerifyWins(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       time.Duration
	}{
		{"off by default", "log: {level: info}\n", 0},
		{"runtime's", "runtime: {verify_interval: 1h}\n", time.Hour},
		{"the worker's", "runtime: {verify_interval: 1h, verify_intervals: {plain: 5m}}\n", 5 * time.Minute},
		{"the worker's off", "runtime: {verify_interval: 1h, verify_intervals: {plain: -1s}}\n", -time.Second},
		{"another worker's", "runtime: {verify_interval: 1h, verify_intervals: {dns: 5m}}\n", time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(strings.ReplaceAll(tt.yaml, "plain", "lb")), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := targetOptions(cfg, namedTarget{name: "lb"}).VerifyInterval; got != tt.want {
				t.Fatalf("verify interval %s, want %s", got, tt.want)
			}
		})
	}
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("runtime: {verify_intervals: {nosuch: 1m}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(p); err == nil || !strings.Contains(err.Error(), "runtime.verify_intervals.nosuch") {
		t.Fatalf("unknown worker in verify_intervals: %v", err)
	}
}

// namedTarget is plainTarget under another name.
type namedTarget struct {
	plainTarget
	name string
}

func (n namedTarget) Name() string { return n.name }
