package openstack

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// MaxMessageSize is the largest AMQP body Decode accepts.
const MaxMessageSize = 4 << 20

// ErrInvalidMessage is wrapped by every error of a message that cannot be
// decoded (bad JSON, an unknown envelope, a payload vmglue cannot read): a
// poison message, dead-lettered, never retried.
var ErrInvalidMessage = errors.New("invalid notification")

// ErrIgnored is returned by Map for a notification that is not about an
// instance's lifecycle (an event type vmglue does not map, or no uuid).
var ErrIgnored = errors.New("notification ignored")

// Formats of a notification's payload.
const (
	FormatVersioned = "versioned" // nova_object payloads, event types "instance.*"
	FormatLegacy    = "legacy"    // flat payloads, event types "compute.instance.*"
)

// Notification is one decoded Nova notification, without its context.
type Notification struct {
	MessageID   string
	PublisherID string
	EventType   string
	Priority    string
	// Timestamp is when Nova emitted the notification (UTC); zero if absent.
	Timestamp time.Time
	// Format is FormatVersioned or FormatLegacy (from the payload's shape).
	Format  string
	Payload json.RawMessage
}

// envelope is the oslo.messaging 2.0 envelope.
type envelope struct {
	Version *string `json:"oslo.version"`
	Message *string `json:"oslo.message"`
}

// message is the oslo.messaging message. The "_context_*" keys are not
// fields: encoding/json drops them while decoding.
type message struct {
	MessageID   string          `json:"message_id"`
	PublisherID string          `json:"publisher_id"`
	EventType   string          `json:"event_type"`
	Priority    string          `json:"priority"`
	Timestamp   string          `json:"timestamp"`
	Payload     json.RawMessage `json:"payload"`
}

// Decode reads one AMQP body: the oslo.messaging 2.0 envelope, or the bare
// 1.0 message of driver "messaging". Its errors wrap ErrInvalidMessage and
// never quote the body.
func Decode(body []byte) (Notification, error) {
	if len(body) > MaxMessageSize {
		return Notification{}, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidMessage, len(body), MaxMessageSize)
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Notification{}, fmt.Errorf("%w: body is not a JSON object: %s", ErrInvalidMessage, jsonProblem(err))
	}
	inner := body
	switch {
	case env.Version == nil && env.Message == nil:
		// oslo.messaging 1.0: the message itself.
	case env.Version == nil || env.Message == nil:
		return Notification{}, fmt.Errorf("%w: oslo envelope without oslo.version or oslo.message", ErrInvalidMessage)
	case *env.Version != "2.0":
		return Notification{}, fmt.Errorf("%w: unknown oslo.version %.10q", ErrInvalidMessage, *env.Version)
	default:
		inner = []byte(*env.Message)
	}
	var m message
	if err := json.Unmarshal(inner, &m); err != nil {
		return Notification{}, fmt.Errorf("%w: oslo.message is not a JSON object: %s", ErrInvalidMessage, jsonProblem(err))
	}
	if m.EventType == "" {
		return Notification{}, fmt.Errorf("%w: no event_type", ErrInvalidMessage)
	}
	n := Notification{
		MessageID: m.MessageID, PublisherID: m.PublisherID, EventType: m.EventType,
		Priority: strings.ToUpper(m.Priority), Payload: m.Payload, Format: FormatLegacy,
	}
	if m.Timestamp != "" {
		t, err := parseTime(m.Timestamp)
		if err != nil {
			return Notification{}, fmt.Errorf("%w: timestamp: %v", ErrInvalidMessage, err)
		}
		n.Timestamp = t
	}
	if bytes.Contains(m.Payload, []byte(`"nova_object.data"`)) {
		var probe struct {
			Data json.RawMessage `json:"nova_object.data"`
		}
		if json.Unmarshal(m.Payload, &probe) == nil && probe.Data != nil {
			n.Format = FormatVersioned
		}
	}
	return n, nil
}

// jsonProblem describes a JSON error without quoting the input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at offset %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("unexpected %s for %.60q at offset %d", te.Value, te.Field, te.Offset)
	}
	return "unexpected end or shape"
}

// timeLayouts are the shapes Nova writes times in: str(datetime) in the
// envelope and legacy payloads, ISO 8601 in versioned payloads.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
}

// parseTime reads one of Nova's times; one without a zone is UTC.
func parseTime(s string) (time.Time, error) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unknown time format %.40q", s)
}

// Envelope wraps an oslo.messaging message (JSON) in the 2.0 envelope, as
// Nova's messagingv2 driver sends it: the message as a JSON string.
func Envelope(message []byte) []byte {
	b, _ := json.Marshal(struct {
		Version string `json:"oslo.version"`
		Message string `json:"oslo.message"`
	}{"2.0", string(message)}) // marshaling two strings cannot fail
	return b
}
