package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmglue/vmglue/internal/config"
)

// The shipped example must stay loadable (secret files are only read when
// the workers start, so their absence is fine here).
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := config.Load("../../deploy/vmglue.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Workers.Names(), ","); got != "dns,lb,puppet" {
		t.Fatalf("workers %q", got)
	}
	if cfg.Runtime.CompactAfter != config.DefaultCompactAfter || cfg.Runtime.CompactInterval != config.DefaultCompactInterval {
		t.Fatalf("compaction %s every %s", cfg.Runtime.CompactAfter, cfg.Runtime.CompactInterval)
	}
}

func TestLoadErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "nats:\n  urll: x\n", "urll"},
		{"bad level", "log:\n  level: loud\n", "log.level"},
		{"bad replicas", "nats:\n  stream:\n    replicas: 9\n", "nats.stream.replicas"},
		{"password without user", "nats:\n  password_file: /x\n", "nats.password_file"},
		{"dns without servers", "workers:\n  dns:\n    forward_zones: [a.test.]\n", "dns."},
		{"lb without instances", "workers:\n  lb: {}\n", "instances"},
		{"negative compact_after", "runtime:\n  compact_after: -1h\n", "runtime.compact_after"},
		{"malformed secret attribute pattern", "secret_attributes: [\"[A-\"]\n", "secret_attributes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := config.Load(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line naming %q", err, tt.want)
			}
		})
	}
}

func TestSecretFromFileAndEnv(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s")
	os.WriteFile(p, []byte("hunter2\n"), 0o600)
	if s, err := config.Secret(p, ""); err != nil || s != "hunter2" {
		t.Fatalf("file secret %q %v", s, err)
	}
	t.Setenv("VMGLUE_TEST_SECRET", "fromenv")
	if s, _ := config.Secret("", "VMGLUE_TEST_SECRET"); s != "fromenv" {
		t.Fatalf("env secret %q", s)
	}
	_, err := config.Secret(filepath.Join(t.TempDir(), "missing"), "")
	if err == nil {
		t.Fatal("missing secret file: no error")
	}
}
