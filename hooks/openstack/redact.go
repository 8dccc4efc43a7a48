package openstack

import (
	"encoding/json"
	"strings"
)

// Redact returns a copy of an AMQP body that is safe to keep in a dead
// letter: the JSON with every "_context_*" key removed at any depth, also
// inside the envelope's oslo.message string, and every key that names a
// secret (token, password, secret, credential) replaced by "(redacted)".
// A body that is not JSON is not kept at all: Redact returns nil, because
// nothing in it can be told apart from a token.
func Redact(body []byte) json.RawMessage {
	var v any
	if len(body) > MaxMessageSize || json.Unmarshal(body, &v) != nil {
		return nil
	}
	b, err := json.Marshal(redactValue(v))
	if err != nil {
		return nil
	}
	return b
}

func redactValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			switch {
			case strings.HasPrefix(k, "_context"):
				continue
			case secretKey(k):
				out[k] = "(redacted)"
			case k == "oslo.message":
				out[k] = redactString(e)
			default:
				out[k] = redactValue(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = redactValue(e)
		}
		return out
	}
	return v
}

// redactString redacts the JSON inside the envelope's message string; a
// string that is not JSON is dropped.
func redactString(v any) any {
	s, ok := v.(string)
	if !ok {
		return redactValue(v)
	}
	var inner any
	if json.Unmarshal([]byte(s), &inner) != nil {
		return "(not JSON, dropped)"
	}
	b, err := json.Marshal(redactValue(inner))
	if err != nil {
		return "(dropped)"
	}
	return string(b)
}

func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"token", "password", "passwd", "secret", "credential", "private"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}
