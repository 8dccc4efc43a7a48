package hookcmd_test

import (
	"bytes"
	"context"
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/hookcmd"
)

func TestOptionsFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		flags   []string
		want    func(o hookcmd.Options) bool
		wantErr string // in Notes: the run goes on with the default
	}{
		{name: "defaults", want: func(o hookcmd.Options) bool {
			return o.URL == eventbus.DefaultURL && o.Cloud == hookcmd.DefaultCloud &&
				o.SpoolDir == hookcmd.DefaultSpoolDir && o.Timeout == hookcmd.DefaultTimeout &&
				o.MaxInput == hookcmd.DefaultMaxInput
		}},
		{name: "every variable", env: map[string]string{
			"VMGLUE_NATS_URL": "nats://n1:4222", "VMGLUE_CLOUD": "east", "VMGLUE_SPOOL_DIR": "/s",
			"VMGLUE_NATS_USER": "u", "VMGLUE_NATS_PASSWORD": "p", "VMGLUE_NATS_PASSWORD_FILE": "/pf",
			"VMGLUE_NATS_TOKEN": "t", "VMGLUE_NATS_TOKEN_FILE": "/tf", "VMGLUE_NATS_CREDS": "/c",
			"VMGLUE_NATS_CA": "/ca", "VMGLUE_HOOK_TIMEOUT": "1500ms", "VMGLUE_SECRET_ATTRIBUTES": "*_PIN",
			"VMGLUE_CHALLENGE_ATTRIBUTE": "VM_CHALLENGE", "VMGLUE_CHALLENGE_KEY_FILE": "/k",
		}, want: func(o hookcmd.Options) bool {
			return reflect.DeepEqual(o, hookcmd.Options{URL: "nats://n1:4222", Cloud: "east", SpoolDir: "/s", User: "u",
				Password: "p", PasswordFile: "/pf", Token: "t", TokenFile: "/tf", CredsFile: "/c",
				CAFile: "/ca", Timeout: 1500 * time.Millisecond, MaxInput: hookcmd.DefaultMaxInput,
				SecretAttributes: "*_PIN", ChallengeAttribute: "VM_CHALLENGE", ChallengeKeyFile: "/k"})
		}},
		{name: "challenge defaults", want: func(o hookcmd.Options) bool {
			return o.ChallengeAttribute == eventbus.DefaultChallengeAttribute && o.ChallengeKeyFile == eventbus.DefaultChallengeKeyFile
		}},
		{name: "secret flags override env", env: map[string]string{"VMGLUE_CHALLENGE_KEY_FILE": "/env.key"},
			flags: []string{"-challenge-key-file", "/flag.key", "-secret-attributes", "*_PIN", "-challenge-attribute", "X_CHALLENGE"},
			want: func(o hookcmd.Options) bool {
				return o.ChallengeKeyFile == "/flag.key" && o.SecretAttributes == "*_PIN" && o.ChallengeAttribute == "X_CHALLENGE"
			}},
		{name: "timeout in seconds", env: map[string]string{"VMGLUE_HOOK_TIMEOUT": "3"},
			want: func(o hookcmd.Options) bool { return o.Timeout == 3*time.Second }},
		{name: "flags override env", env: map[string]string{"VMGLUE_CLOUD": "east", "VMGLUE_HOOK_TIMEOUT": "3s"},
			flags: []string{"-cloud", "west", "-timeout", "2s", "-spool", "/x", "-max-input", "100"},
			want: func(o hookcmd.Options) bool {
				return o.Cloud == "west" && o.Timeout == 2*time.Second && o.SpoolDir == "/x" && o.MaxInput == 100
			}},
		{name: "bad timeout", env: map[string]string{"VMGLUE_HOOK_TIMEOUT": "soon"}, wantErr: "VMGLUE_HOOK_TIMEOUT"},
		{name: "negative timeout", env: map[string]string{"VMGLUE_HOOK_TIMEOUT": "-1s"}, wantErr: "positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := hookcmd.OptionsFromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if len(o.Notes) != 1 || !strings.Contains(o.Notes[0], tt.wantErr) || o.Timeout != hookcmd.DefaultTimeout {
					t.Fatalf("notes %q, timeout %s: want one note mentioning %q and the default timeout", o.Notes, o.Timeout, tt.wantErr)
				}
				return
			}
			if len(o.Notes) != 0 {
				t.Fatalf("notes %q", o.Notes)
			}
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			o.RegisterFlags(fs)
			if err := fs.Parse(tt.flags); err != nil {
				t.Fatal(err)
			}
			if !tt.want(o) {
				t.Errorf("options %+v", o)
			}
		})
	}
}

// TestRunInProcess covers Run without a subprocess: the size cap, and a
// spooled event when NATS is down.
func TestRunInProcess(t *testing.T) {
	tests := []struct {
		name     string
		stdin    []byte
		maxInput int64
		url      string
		wantCode int
		want     string
	}{
		{"over the cap", runningInput(50), 100, "", hookcmd.ExitInvalid, "vmglue-hook: invalid input: stdin is larger than 100 bytes\n"},
		{"at the cap", runningInput(51), int64(len(runningInput(51))), closedURL(t), hookcmd.ExitOK, "vmglue-hook: spooled one-51-running-"},
		{"no input", nil, 0, "", hookcmd.ExitInvalid, "vmglue-hook: invalid input: empty stdin and no arguments\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			opts := hookcmd.Options{URL: tt.url, SpoolDir: t.TempDir(), MaxInput: tt.maxInput, Timeout: 2 * time.Second}
			code := hookcmd.Run(context.Background(), opts, bytes.NewReader(tt.stdin), nil, &stderr)
			if code != tt.wantCode || !strings.HasPrefix(stderr.String(), tt.want) {
				t.Errorf("Run = %d, %q; want %d, %q", code, stderr.String(), tt.wantCode, tt.want)
			}
		})
	}
}
