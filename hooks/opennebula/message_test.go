package opennebula

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestParseStateKey(t *testing.T) {
	tests := []struct {
		name, key string
		want      StateKey
		ok        bool
	}{
		{"as one_hm builds it", "EVENT STATE VM/ACTIVE/RUNNING/42 ", StateKey{"ACTIVE", "RUNNING", "42"}, true},
		{"without the trailing space", "EVENT STATE VM/DONE/LCM_INIT/7", StateKey{"DONE", "LCM_INIT", "7"}, true},
		{"leading zeros", "EVENT STATE VM/PENDING/LCM_INIT/007 ", StateKey{"PENDING", "LCM_INIT", "7"}, true},
		{"the EVENT VM twin", "EVENT VM 42/ACTIVE/RUNNING ", StateKey{}, false},
		{"a host", "EVENT STATE HOST/ERROR//3 ", StateKey{}, false},
		{"an API call", "EVENT API one.vm.allocate 1", StateKey{}, false},
		{"no id", "EVENT STATE VM/ACTIVE/RUNNING/ ", StateKey{}, false},
		{"id not a number", "EVENT STATE VM/ACTIVE/RUNNING/x1 ", StateKey{}, false},
		{"negative id", "EVENT STATE VM/ACTIVE/RUNNING/-1 ", StateKey{}, false},
		{"too many parts", "EVENT STATE VM/ACTIVE/RUNNING/1/2 ", StateKey{}, false},
		{"empty state", "EVENT STATE VM//RUNNING/1 ", StateKey{}, false},
		{"two trailing spaces", "EVENT STATE VM/ACTIVE/RUNNING/1  ", StateKey{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStateKey([]byte(tt.key))
			if tt.ok != (err == nil) || got != tt.want {
				t.Fatalf("ParseStateKey(%q) = %+v, %v; want %+v, ok %v", tt.key, got, err, tt.want, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("error does not wrap ErrInvalidInput: %v", err)
			}
		})
	}
}

// hookMessage wraps a VM document as one_hm does.
func hookMessage(object, resourceID, vm string) []byte {
	return []byte(base64.StdEncoding.EncodeToString([]byte("<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>" + object +
		"</HOOK_OBJECT><STATE>ACTIVE</STATE><LCM_STATE>RUNNING</LCM_STATE><RESOURCE_ID>" + resourceID +
		"</RESOURCE_ID><REMOTE_HOST>kvm1</REMOTE_HOST><EXTRA><A><B/></A></EXTRA>" + vm + "</HOOK_MESSAGE>")))
}

func TestParseHookMessage(t *testing.T) {
	doc := string(readTestdata(t, "running-2nics.xml"))
	doc = doc[strings.Index(doc, "<VM"):]
	want, err := ParseVM([]byte(doc), testCloud)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseHookMessage(hookMessage("VM", want.ID, doc), testCloud, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != "STATE" || m.Object != "VM" || m.State != "ACTIVE" || m.LCMState != "RUNNING" || m.ResourceID != want.ID {
		t.Fatalf("header %+v", m)
	}
	if m.VM.ID != want.ID || m.VM.Kind != want.Kind || len(m.VM.NICs) != len(want.NICs) || m.VM.Host != want.Host {
		t.Fatalf("VM %+v, want %+v", m.VM, want)
	}

	b64 := func(s string) []byte { return []byte(base64.StdEncoding.EncodeToString([]byte(s))) }
	good := hookMessage("VM", want.ID, doc)
	bad := []struct {
		name  string
		frame []byte
	}{
		{"not base64", []byte("<HOOK_MESSAGE>")},
		{"line break", append(append([]byte{}, good[:8]...), append([]byte("\n"), good[8:]...)...)},
		{"empty", nil},
		{"not XML", b64("hello")},
		{"a VM document alone", b64(doc)},
		{"a host", hookMessage("HOST", want.ID, "<HOST><ID>42</ID></HOST>")},
		{"no VM", hookMessage("VM", want.ID, "")},
		{"another VM's id", hookMessage("VM", "43", doc)},
		{"cut short", b64("<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE>" + doc[:100])},
		{"two roots", b64("<HOOK_MESSAGE></HOOK_MESSAGE><X/>")},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseHookMessage(tt.frame, testCloud, nil)
			if err == nil {
				t.Fatal("accepted")
			}
			checkFuzzError(t, err)
		})
	}
}

func FuzzParseHookMessage(f *testing.F) {
	seedDocs(f, func(doc []byte) {
		f.Add(hookMessage("VM", "42", string(doc)))
	})
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := ParseHookMessage(frame, testCloud, nil)
		if err != nil {
			checkFuzzError(t, err)
			return
		}
		if m.VM.ID != m.ResourceID || m.Object != "VM" || m.Type != "STATE" {
			t.Fatalf("accepted an inconsistent message: %+v", m)
		}
	})
}
