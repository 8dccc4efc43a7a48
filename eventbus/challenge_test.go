package eventbus

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func TestProtect(t *testing.T) {
	attrs := func() map[string]string {
		return map[string]string{"PUPPET_CHALLENGE": "s3cret", "ROOT_PASS": "hunter2", "DB_PASS": "",
			"SSH_PUBLIC_KEY": "ssh-ed25519 AAAA", "ROLE": "web"}
	}
	withKey := Secrets{ChallengeKey: func() ([]byte, error) { return testKey, nil }}
	noKey := Secrets{ChallengeKey: func() ([]byte, error) { return nil, errors.New("no challenge key: open k: no such file") }}
	tests := []struct {
		name      string
		sec       Secrets
		challenge string // want; "-" absent
		notes     string
	}{
		{"with key", withKey, ChallengeMAC(testKey, "one", "7", "s3cret"), ""},
		{"key unreadable", noKey, "-", "PUPPET_CHALLENGE not sent: no challenge key: open k: no such file"},
		{"no key configured", Secrets{}, "-", "PUPPET_CHALLENGE not sent: no challenge key configured"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vm := &VM{Cloud: "one", ID: "7", Attributes: attrs()}
			notes := tc.sec.Protect(vm)
			got, ok := vm.Attributes["PUPPET_CHALLENGE"]
			if (tc.challenge == "-") == ok || (ok && got != tc.challenge) {
				t.Errorf("PUPPET_CHALLENGE = %q (present %v), want %q", got, ok, tc.challenge)
			}
			if strings.Join(notes, "; ") != tc.notes {
				t.Errorf("notes %q, want %q", notes, tc.notes)
			}
			want := map[string]string{"ROOT_PASS": RedactedValue, "DB_PASS": "", "SSH_PUBLIC_KEY": "ssh-ed25519 AAAA", "ROLE": "web"}
			for k, v := range want {
				if vm.Attributes[k] != v {
					t.Errorf("%s = %q, want %q", k, vm.Attributes[k], v)
				}
			}
		})
	}
}

func TestChallengeMAC(t *testing.T) {
	mac := ChallengeMAC(testKey, "one", "7", "s3cret")
	if !strings.HasPrefix(mac, ChallengePrefix) || strings.Contains(mac, "s3cret") {
		t.Fatalf("mac %q", mac)
	}
	other := []byte("another-key-another-key-another-key")
	for name, m := range map[string]string{
		"other vm":    ChallengeMAC(testKey, "one", "8", "s3cret"),
		"other cloud": ChallengeMAC(testKey, "two", "7", "s3cret"),
		"other key":   ChallengeMAC(other, "one", "7", "s3cret"),
	} {
		if m == mac {
			t.Errorf("%s: same MAC", name)
		}
	}
	vm := &VM{Cloud: "one", ID: "7"}
	tests := []struct {
		name              string
		key               []byte
		stored, candidate string
		match             bool
	}{
		{"right", testKey, mac, "s3cret", true},
		{"wrong", testKey, mac, "s3cre", false},
		{"the MAC itself", testKey, mac, mac, false},
		{"other key", other, mac, "s3cret", false},
		{"no key", nil, mac, "s3cret", false},
		{"clear text stored (older hook)", testKey, "s3cret", "s3cret", false},
		{"redacted stored", testKey, RedactedValue, RedactedValue, false},
		{"unkeyed sha256 seal (older hook)", testKey, "sha256:00", "s3cret", false},
		{"nothing stored", testKey, "", "", false},
	}
	for _, tc := range tests {
		if got := MatchChallenge(tc.key, vm, tc.stored, tc.candidate); got != tc.match {
			t.Errorf("%s: MatchChallenge = %v, want %v", tc.name, got, tc.match)
		}
	}
}

func TestReadChallengeKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := strings.Repeat("ab", 32)
	tests := []struct {
		name, file, err string
	}{
		{"hex key with newline", write("ok", good+"\n", 0o640), ""},
		{"missing", filepath.Join(dir, "nope"), "no such file"},
		{"too short", write("short", "abc\n", 0o600), "want at least 32"},
		{"world-readable", write("open", good, 0o644), "readable by every user"},
		{"not configured", "", "no key file configured"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, err := ReadChallengeKey(tc.file)
			if tc.err == "" {
				if err != nil || string(key) != good {
					t.Fatalf("got %q, %v", key, err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrNoChallengeKey) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want one with %q", err, tc.err)
			}
			if strings.Contains(err.Error(), good) {
				t.Fatal("the error holds the key")
			}
		})
	}
}
