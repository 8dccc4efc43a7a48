package eventbus

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestSecretAttribute(t *testing.T) {
	tests := []struct {
		name   string
		secret bool
	}{
		{"PUPPET_CHALLENGE", true},
		{"ROOT_PASSWORD", true},
		{"password", true},
		{"DB_PASSWD", true},
		{"ONEGATE_TOKEN", true},
		{"AWS_SECRET", true},
		{"API_KEY", true},
		{"SSH_PRIVATE_KEY", true},
		{"REGISTRY_CREDENTIALS", true},
		{"ROOT_PASS", true},
		{"DB_PASS", true},
		{"db_pass", true},
		{"MYSQL_ROOT_PASSPHRASE", true},
		{"DB_PWD", true},
		{"SSH_KEY", true},
		{"WIREGUARD_PSK", true},
		{"KEY_DATA", true},
		{"STRIPE_APIKEY", true},
		{"SSH_PUBLIC_KEY", false},
		{"SSH_PUBKEY", false},
		{"SSH_AUTHORIZED_KEYS", false},
		{"ssh_public_key", false},
		{"HOSTNAME", false},
		{"LABELS", false},
		{"LB_BACKENDS", false},
		{"KEYBOARD", false},
	}
	for _, tc := range tests {
		if got := SecretAttribute(tc.name); got != tc.secret {
			t.Errorf("SecretAttribute(%q) = %v, want %v", tc.name, got, tc.secret)
		}
	}
}

func TestSecretNamesConfigured(t *testing.T) {
	n, err := ParseSecretNames(" *_PIN , !db_pass,")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		secret bool
	}{
		{"SIM_PIN", true},   // added
		{"DB_PASS", false},  // exempted explicitly
		{"ROOT_PASS", true}, // the defaults stay
		{"SSH_PUBLIC_KEY", false},
		{"PIN_CODE", false},
	}
	for _, tc := range tests {
		if got := n.Secret(tc.name); got != tc.secret {
			t.Errorf("Secret(%q) = %v, want %v", tc.name, got, tc.secret)
		}
	}
	if _, err := ParseSecretNames("[A-"); err == nil {
		t.Error("a malformed pattern was accepted")
	}
	var zero *SecretNames
	if !zero.Secret("ROOT_PASS") || zero.Secret("ROLE") {
		t.Error("a nil SecretNames is not the defaults")
	}
}

func TestRedacted(t *testing.T) {
	vm := &VM{Cloud: "one", ID: "1", Name: "a", Kind: KindRunning,
		Attributes: map[string]string{"PUPPET_CHALLENGE": "x1", "ROLE": "web", "EMPTY_TOKEN": ""}}
	r, changed := vm.Redacted()
	if !changed || r.Attributes["PUPPET_CHALLENGE"] != RedactedValue || r.Attributes["ROLE"] != "web" || r.Attributes["EMPTY_TOKEN"] != "" {
		t.Fatalf("redacted: %v %v", changed, r.Attributes)
	}
	if vm.Attributes["PUPPET_CHALLENGE"] != "x1" {
		t.Fatal("Redacted changed its receiver")
	}
	plain := &VM{Attributes: map[string]string{"ROLE": "web"}}
	if r, changed := plain.Redacted(); changed || r != plain {
		t.Fatalf("nothing secret: got a copy (%v)", changed)
	}
}

func TestRedactEventJSON(t *testing.T) {
	vm := VM{Cloud: "one", CloudType: "opennebula", ID: "7", Name: "web7", State: "ACTIVE", Kind: KindRunning,
		Attributes: map[string]string{"PUPPET_CHALLENGE": "x1"}, Version: Version{Seq: 1}}
	ev, err := NewEvent(vm)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	out := RedactEventJSON(b)
	if bytes.Contains(out, []byte("x1")) || !bytes.Contains(out, []byte(RedactedValue)) {
		t.Fatalf("not redacted: %s", out)
	}
	back, err := Unmarshal(out)
	if err != nil || back.ID != ev.ID || back.Data.Name != "web7" {
		t.Fatalf("redacted event unreadable or changed: %v %+v", err, back)
	}
	for _, in := range [][]byte{[]byte("not json"), mustJSON(t, VM{})} {
		if got := RedactEventJSON(in); !bytes.Equal(got, in) {
			t.Errorf("RedactEventJSON(%q) = %q, want it unchanged", in, got)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
