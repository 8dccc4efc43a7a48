package cli_test

import (
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/ops/opstest"
	"github.com/vmglue/vmglue/internal/testenv"
)

// The JSON outputs of the ops commands carry whole VM snapshots: secret
// attributes (the autosign challenge, passwords) are redacted unless
// --show-secrets is given; the stored events keep them.
func TestJSONOutputRedactsSecrets(t *testing.T) {
	e := newOpsEnv(t, "dns", "lb")
	e.Targets["lb"].Fail.Store(true)
	v := opstest.VM("50", eventbus.KindRunning)
	v.Attributes = map[string]string{"PUPPET_CHALLENGE": "s3cret-challenge", "DB_PASSWORD": "pw-hunter2",
		"SSH_PUBLIC_KEY": "ssh-ed25519 AAAApublic", "ROLE": "web"}
	e.Publish(v)
	e.Idle(t)
	testenv.WaitFor(t, 20*time.Second, "lb dead letter", func() bool { return e.DeadLetters(t) == 1 })

	secrets := []string{"s3cret-challenge", "pw-hunter2"}
	kept := []string{"ssh-ed25519 AAAApublic", "ROLE", "web50"}
	for _, args := range [][]string{
		{"tail", "--no-follow", "--json"},
		{"vm", "50", "--json"},
		{"dlq", "list", "--json"},
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
