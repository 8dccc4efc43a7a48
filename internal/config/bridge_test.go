package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmglue/vmglue/internal/config"
)

func loadYAML(t *testing.T, text string) (*config.Config, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Load(p)
}

func TestBridgeOpenStackSection(t *testing.T) {
	cfg, err := config.Load("../../deploy/vmglue.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Bridge.OpenStack
	if b == nil || b.Cloud != "os1" || b.AMQP.Exchange != "nova" || b.AMQP.Queue != "vmglue-openstack" {
		t.Fatalf("example bridge.openstack: %+v", b)
	}
	want := "versioned_notifications.info,versioned_notifications.error,notifications.info,notifications.error"
	if got := strings.Join(b.RoutingKeys(), ","); got != want {
		t.Errorf("routing keys %s, want %s", got, want)
	}

	tests := []struct{ name, yaml, want string }{
		{"no cloud", "amqp: {urls: [amqp://h/]}", "bridge.openstack.cloud"},
		{"no url", "cloud: os", "bridge.openstack.amqp.urls"},
		{"http url", "cloud: os\namqp: {urls: ['http://u:pw@h/']}", "amqp.urls[0]"},
		{"bad format", "cloud: os\namqp: {urls: [amqp://h/]}\nformats: [json]", "bridge.openstack.formats"},
		{"bad name", "cloud: os\nname: uuid\namqp: {urls: [amqp://h/]}", "bridge.openstack.name"},
		{"wildcard queue", "cloud: os\namqp: {urls: [amqp://h/], queue: 'a.#'}", "amqp.queue"},
		{"cert without key", "cloud: os\namqp: {urls: [amqps://h/], cert_file: /c}", "key_file"},
		{"unknown key", "cloud: os\namqp: {urls: [amqp://h/], password: x}", "password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadYAML(t, "bridge:\n  openstack:\n    "+strings.ReplaceAll(tt.yaml, "\n", "\n    ")+"\n")
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "pw") {
				t.Fatalf("err = %v, want one naming %q, without the password", err, tt.want)
			}
		})
	}
}

// The defaults of a minimal section.
func TestBridgeOpenStackDefaults(t *testing.T) {
	cfg, err := loadYAML(t, "bridge:\n  openstack:\n    cloud: os\n    amqp: {urls: ['amqp://h/']}\n")
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Bridge.OpenStack
	if b.SpoolDir != filepath.Join(config.DefaultDataDir(), "spool", "openstack") || b.Name != "display_name" ||
		b.AMQP.Prefetch != 64 || len(b.Formats) != 2 || b.Lookup.Enabled {
		t.Fatalf("defaults: %+v", b)
	}
}

// The sweep of the bridged cloud names servers as the bridge does, unless
// its entry says otherwise; another cloud's takes the default.
func TestSweepNamesAsTheBridge(t *testing.T) {
	cfg, err := loadYAML(t, "bridge:\n  openstack:\n    cloud: os\n    name: hostname\n    amqp: {urls: ['amqp://h/']}\n"+
		"sweep:\n  openstack:\n    - {cloud: os}\n    - {cloud: os2}\n    - {cloud: os3, name: hostname}\n")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range cfg.Sweep.OpenStack {
		got = append(got, o.Name)
	}
	if want := "hostname,display_name,hostname"; strings.Join(got, ",") != want {
		t.Fatalf("sweep names %v, want %s", got, want)
	}
}

// config check prints the AMQP URLs without their userinfo.
func TestBridgeURLRedacted(t *testing.T) {
	cfg, err := loadYAML(t, "bridge:\n  openstack:\n    cloud: os\n    amqp: {urls: ['amqp://vmglue:s3cret@h:5672/']}\n")
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.String(); strings.Contains(s, "s3cret") || !strings.Contains(s, "amqp://***@h:5672/") {
		t.Fatalf("config printed:\n%s", s)
	}
	if cfg.Bridge.OpenStack.AMQP.URLs[0] != "amqp://vmglue:s3cret@h:5672/" {
		t.Fatal("String changed the configuration itself")
	}
}
