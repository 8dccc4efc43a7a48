package config_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/hooks/opennebula/listen"
	"github.com/vmglue/vmglue/internal/config"
)

func loadListen(t *testing.T, section string) (*config.Config, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	text := "listen:\n  opennebula:\n    " + strings.ReplaceAll(section, "\n", "\n    ") + "\n"
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Load(p)
}

func TestListenOpenNebulaSection(t *testing.T) {
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	def := cfg.OpenNebulaListener()
	if def.Cloud != "one" || def.Endpoint != listen.DefaultEndpoint || !def.Loopback() || !slices.Equal(def.Filters, []string{"EVENT STATE VM/"}) ||
		def.SweepInterval != listen.DefaultSweepInterval || !strings.HasSuffix(def.SpoolDir, "spool/listen-opennebula-one") {
		t.Fatalf("defaults without the section: %+v", def)
	}
	if strings.Contains(cfg.String(), "\nlisten:") {
		t.Fatalf("an absent section is printed:\n%s", cfg)
	}
	cfg, err = loadListen(t, "cloud: one2\nendpoint: tcp://10.0.0.5:2101\nfilters: [\"EVENT STATE VM/DONE/\"]\nsweep_interval: -1s")
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.OpenNebulaListener()
	if got.Cloud != "one2" || got.Loopback() || got.SweepInterval != -time.Second || !strings.HasSuffix(got.SpoolDir, "listen-opennebula-one2") {
		t.Fatalf("section: %+v", got)
	}

	tests := []struct{ name, yaml, want string }{
		{"bad cloud", "cloud: a.b", "listen.opennebula.cloud"},
		{"http endpoint", "endpoint: http://127.0.0.1:2101", "listen.opennebula.endpoint"},
		{"no port", "endpoint: tcp://127.0.0.1", "listen.opennebula.endpoint"},
		{"filter without slash", "filters: [\"EVENT STATE VM/ACTIVE/BOOT\"]", "listen.opennebula.filters[0]"},
		{"filter of hosts", "filters: [\"EVENT STATE HOST/\"]", "listen.opennebula.filters[0]"},
		{"empty filters", "filters: []", "listen.opennebula.filters"},
		{"unknown key", "endpoints: [tcp://127.0.0.1:2101]", "endpoints"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadListen(t, tt.yaml)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %q", err, tt.want)
			}
		})
	}
}
