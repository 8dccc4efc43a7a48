package openstack

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDecode: any body decodes to an event, is ignored, or is refused with
// ErrInvalidMessage in one short line; nothing panics; an event is valid
// and never holds the context's token.
func FuzzDecode(f *testing.F) {
	f.Add(wire(f, versioned("instance.create.end", nil)))
	f.Add(wire(f, versioned("instance.update", map[string]any{"state_update": map[string]any{"nova_object.version": "1.0", "nova_object.data": map[string]any{"old_state": "building", "state": "active"}}})))
	f.Add(mustMarshal(f, versioned("instance.delete.end", nil)))
	f.Add([]byte(`{"oslo.version":"2.0","oslo.message":"{\"event_type\":\"compute.instance.create.end\",\"payload\":{\"instance_id\":\"a\",\"state\":\"active\",\"metadata\":[{\"key\":\"k\",\"value\":\"v\"}]}}"}`))
	captured, _ := filepath.Glob(filepath.Join(capturedDir, "*", "*.json"))
	for _, file := range captured {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	if root := os.Getenv("VMGLUE_CORPUS"); root != "" {
		for _, d := range corpusDirs {
			files, _ := filepath.Glob(filepath.Join(root, "openstack", d, "*.json"))
			for _, file := range files {
				if b, err := os.ReadFile(file); err == nil {
					f.Add(b)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := Redact(body)
		if r != nil && !json.Valid(r) {
			t.Fatalf("Redact returned invalid JSON %q", r)
		}
		n, err := Decode(body)
		if err != nil {
			checkError(t, err)
			return
		}
		ev, err := Options{Cloud: testCloud}.Event(n)
		if errors.Is(err, ErrIgnored) {
			return
		}
		if err != nil {
			checkError(t, err)
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("event does not validate: %v", err)
		}
		b, _ := json.Marshal(ev)
		if bytes.Contains(b, []byte(secretToken)) {
			t.Fatalf("event holds the token: %s", b)
		}
	})
}

func checkError(t *testing.T, err error) {
	msg := err.Error()
	if !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("error does not wrap ErrInvalidMessage: %q", msg)
	}
	if strings.ContainsAny(msg, "\r\n") || len(msg) >= 300 {
		t.Fatalf("error is not one short line: %q", msg)
	}
}
