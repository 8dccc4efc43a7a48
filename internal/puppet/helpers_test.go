package puppet

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

func TestMain(m *testing.M) {
	// Puppet Server runs a copy of this binary as its autosign policy.
	if vms := os.Getenv("VMGLUE_AUTOSIGN_HELPER_VMS"); vms != "" {
		os.Exit(autosignHelper(vms))
	}
	if url := os.Getenv("VMGLUE_AUTOSIGN_HELPER_NATS"); url != "" {
		os.Exit(autosignNATSHelper(url))
	}
	code := m.Run()
	testenv.StopPuppet()
	os.Exit(code)
}

// fakeVM is a VM whose default certname is <name>.cloud.test, created now:
// before the certificates the test signs for it.
func fakeVM(name, kind string, attrs map[string]string) *eventbus.VM {
	created := time.Now().UTC()
	return &eventbus.VM{Cloud: "one", CloudType: "opennebula", ID: "id-" + name, Name: name,
		Kind: kind, Attributes: attrs, Times: eventbus.Times{Created: &created}}
}

// uniq returns a fresh VM name: the stack is shared by test runs.
func uniq(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1e10)
}

func testConfig(s *testenv.PuppetStack) Config {
	return Config{CAURL: s.CAURL, PuppetDBURL: s.PuppetDBURL, Domain: "cloud.test",
		TLS: TLSConfig{CAFile: s.CAFile, CertFile: s.CertFile, KeyFile: s.KeyFile}}
}

func newTarget(t *testing.T, cfg Config) *Target {
	t.Helper()
	tg, err := New(cfg, worker.Deps{Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)})
	if err != nil {
		t.Fatalf("new target: %v", err)
	}
	return tg
}

// closedURL is a real "down" server: a loopback port nobody listens on.
func closedURL(t *testing.T) string {
	return fmt.Sprintf("https://127.0.0.1:%d", testenv.FreePort(t))
}

// bootstrap runs `puppet ssl bootstrap` for certname (testenv.PuppetBootstrap).
func bootstrap(t *testing.T, s *testenv.PuppetStack, certname, challenge string, extra ...string) (bool, []byte) {
	t.Helper()
	return testenv.PuppetBootstrap(t, s, certname, challenge, extra...)
}
