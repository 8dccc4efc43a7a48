package openstack

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const secretToken = "gAAAAAsecret-token"

func TestDecodeEnvelope(t *testing.T) {
	inner := versioned("instance.power_on.end", nil)
	bare, err := json.Marshal(inner)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		body    []byte
		wantErr string // substring of the error, "" for success
	}{
		{"oslo 2.0", wire(t, inner), ""},
		{"oslo 1.0 bare message", bare, ""},
		{"not JSON", []byte("{\"oslo.version\": \"2.0\", " + secretToken), "not a JSON object"},
		{"array", []byte(`[1,2]`), "not a JSON object"},
		{"unknown oslo version", []byte(`{"oslo.version":"3.0","oslo.message":"{}"}`), "unknown oslo.version"},
		{"envelope without message", []byte(`{"oslo.version":"2.0"}`), "without oslo.version or oslo.message"},
		{"message not JSON", []byte(`{"oslo.version":"2.0","oslo.message":"` + secretToken + `"}`), "oslo.message is not a JSON object"},
		{"no event type", []byte(`{"oslo.version":"2.0","oslo.message":"{\"payload\":{}}"}`), "no event_type"},
		{"bad timestamp", []byte(`{"oslo.version":"2.0","oslo.message":"{\"event_type\":\"x\",\"timestamp\":\"yesterday\"}"}`), "timestamp"},
		{"too large", bytes.Repeat([]byte(" "), MaxMessageSize+1), "bytes, more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Decode(tt.body)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if n.EventType != "instance.power_on.end" || n.Format != FormatVersioned || n.MessageID == "" || n.Timestamp.IsZero() {
					t.Fatalf("decoded %+v", n)
				}
				return
			}
			if !errors.Is(err, ErrInvalidMessage) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want ErrInvalidMessage with %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), secretToken) {
				t.Fatalf("error quotes the body: %v", err)
			}
		})
	}
}

func TestPayloadErrors(t *testing.T) {
	tests := []struct {
		name    string
		payload any
		wantErr string
	}{
		{"major version 3", map[string]any{"nova_object.name": "InstancePayload", "nova_object.version": "3.0", "nova_object.data": map[string]any{"uuid": "x"}}, "major versions"},
		{"data not an object", map[string]any{"nova_object.name": "InstancePayload", "nova_object.version": "1.0", "nova_object.data": map[string]any{"uuid": 7}}, "versioned payload"},
		{"legacy bad time", map[string]any{"instance_id": "x", "state": "active", "created_at": "soon"}, "created_at"},
		{"legacy ip list", map[string]any{"instance_id": "x", "fixed_ips": "none"}, "legacy payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Decode(wire(t, map[string]any{"event_type": "instance.power_on.end", "payload": tt.payload}))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Options{Cloud: testCloud}.Event(n)
			if !errors.Is(err, ErrInvalidMessage) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want ErrInvalidMessage with %q", err, tt.wantErr)
			}
		})
	}
}

// TestContextNeverKept: the message context (a live keystone token) is in
// no event, and Redact removes it from what a dead letter keeps.
func TestContextNeverKept(t *testing.T) {
	body := wire(t, versioned("instance.create.end", nil))
	n, err := Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := Options{Cloud: testCloud}.Event(n)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ev)
	if bytes.Contains(b, []byte(secretToken)) || bytes.Contains(b, []byte("_context")) || bytes.Contains(b, []byte("alice")) {
		t.Fatalf("event carries the context: %s", b)
	}
	if bytes.Contains(b, []byte("hunter2")) {
		t.Fatalf("event carries a secret metadata value in clear text: %s", b)
	}
	for name, in := range map[string][]byte{
		"envelope": body,
		"bare":     mustMarshal(t, versioned("x", map[string]any{"token": secretToken})),
		"nested":   []byte(`{"a":[{"_context_auth_token":"` + secretToken + `","auth_token":"` + secretToken + `"}]}`),
	} {
		r := Redact(in)
		if r == nil || bytes.Contains(r, []byte(secretToken)) || bytes.Contains(r, []byte("_context")) {
			t.Errorf("%s: Redact kept the context: %s", name, r)
		}
	}
	if r := Redact([]byte(`{"oslo.message": "` + secretToken)); r != nil {
		t.Errorf("Redact of a body that is not JSON = %s, want nil", r)
	}
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
