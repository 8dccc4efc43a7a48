package eventbus

import (
	"bytes"
	"encoding/json"
	"strings"
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
		{"SSH_PUBLIC_KEY", false},
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

func TestSealAndMatchSecret(t *testing.T) {
	vm := &VM{Cloud: "one", ID: "7", Attributes: map[string]string{
		"PUPPET_CHALLENGE": "s3cret", "DB_PASSWORD": "", "ROLE": "web", "API_TOKEN": Seal("one", "7", "t0ken")}}
	vm.SealSecrets()
	sealed := vm.Attributes["PUPPET_CHALLENGE"]
	if sealed != Seal("one", "7", "s3cret") || !strings.HasPrefix(sealed, SealedPrefix) || strings.Contains(sealed, "s3cret") {
		t.Fatalf("PUPPET_CHALLENGE = %q", sealed)
	}
	if vm.Attributes["ROLE"] != "web" || vm.Attributes["DB_PASSWORD"] != "" || vm.Attributes["API_TOKEN"] != Seal("one", "7", "t0ken") {
		t.Fatalf("attributes %v: only non-empty, unsealed secrets are sealed, once", vm.Attributes)
	}
	if Seal("one", "8", "s3cret") == sealed || Seal("two", "7", "s3cret") == sealed {
		t.Fatal("the seal does not depend on the VM")
	}
	tests := []struct {
		name, stored, candidate string
		match                   bool
	}{
		{"sealed, right", sealed, "s3cret", true},
		{"sealed, wrong", sealed, "s3cre", false},
		{"sealed, the seal itself", sealed, sealed, false},
		{"clear text (older events), right", "s3cret", "s3cret", true},
		{"clear text, wrong", "s3cret", "S3cret", false},
		{"nothing stored", "", "", false},
	}
	for _, tc := range tests {
		if got := MatchSecret(vm, tc.stored, tc.candidate); got != tc.match {
			t.Errorf("%s: MatchSecret = %v, want %v", tc.name, got, tc.match)
		}
	}
}
