package cli_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/ops/opstest"
	"github.com/vmglue/vmglue/internal/testenv"
)

// The JSON outputs of the ops commands carry whole VM snapshots: secret
// attributes (the autosign challenge, passwords, and what the config's
// secret_attributes adds) are redacted unless --show-secrets is given. The
// hook never publishes them (hookcmd's TestHookKeepsSecretsOffTheBus):
// this event, published directly, stands for one of an older hook.
func TestJSONOutputRedactsSecrets(t *testing.T) {
	e := newOpsEnv(t, "dns", "lb")
	e.Targets["lb"].Fail.Store(true)
	v := opstest.VM("50", eventbus.KindRunning)
	v.Attributes = map[string]string{"PUPPET_CHALLENGE": "s3cret-challenge", "DB_PASSWORD": "pw-hunter2",
		"SSH_PUBLIC_KEY": "ssh-ed25519 AAAApublic", "ROLE": "web", "ROOT_PASS": "r00t-hunter3", "SIM_PIN": "pin-4711"}
	e.Publish(v)
	e.Idle(t)
	testenv.WaitFor(t, 20*time.Second, "lb dead letter", func() bool { return e.DeadLetters(t) == 1 })

	secrets := []string{"s3cret-challenge", "pw-hunter2", "r00t-hunter3", "pin-4711"}
	conf := filepath.Join(t.TempDir(), "vmglue.yaml")
	if err := os.WriteFile(conf, []byte("secret_attributes: [\"*_PIN\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kept := []string{"ssh-ed25519 AAAApublic", "ROLE", "web50"}
	for _, args := range [][]string{
		{"tail", "--no-follow", "--json", "-c", conf},
		{"vm", "50", "--json", "-c", conf},
		{"dlq", "list", "--json", "-c", conf},
	} {
		t.Run(args[0], func(t *testing.T) {
			code, out, errs := e.run(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			contains(t, out, append([]string{eventbus.RedactedValue}, kept...), secrets)
			code, out, errs = e.run(t, append(args, "--show-secrets")...)
			if code != 0 {
				t.Fatalf("--show-secrets: exit %d: %s", code, errs)
			}
			contains(t, out, append(secrets, kept...), []string{eventbus.RedactedValue})
		})
	}
}
