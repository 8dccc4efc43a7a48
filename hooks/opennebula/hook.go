package opennebula

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/vmglue/vmglue/eventbus"
)

// MaxInputSize is the largest VM XML, after base64 decoding, that
// ParseHookInput and ParseVM accept.
const MaxInputSize = 16 << 20

// strictBase64 is RFC 4648 standard base64 with padding, as Ruby's
// Base64.strict_encode64 writes it for $TEMPLATE.
var strictBase64 = base64.StdEncoding.Strict()

// ParseHookInput reads the input of a VM state hook and returns its event.
//
// stdin is what HEM writes with ARGUMENTS_STDIN=yes: "<base64 VM XML>
// <word>...", one line, usually without a trailing newline. When stdin is
// empty or only white space, the same tokens are taken from args (a hook
// registered without ARGUMENTS_STDIN). The first token is the VM XML in
// strict standard base64; the other words are ignored, because the state
// always comes from the XML.
//
// protect keeps the VM's secrets off the bus before the event is built
// (its id covers the attributes): the hook passes eventbus.Secrets.Protect
// with its challenge key; nil protects with eventbus.Secrets{} (secrets
// redacted, the challenge left out).
//
// Errors caused by the input wrap ErrInvalidInput and are one short line;
// an invalid cloud name gives an error that wraps eventbus.ErrInvalidEvent.
//
// Bytes that are not valid UTF-8, or characters XML forbids, are replaced
// by U+FFFD wherever they are (see Repairs): a malformed byte in a field
// the mapping does not need never loses the event.
func ParseHookInput(stdin []byte, args []string, cloud string, protect func(*eventbus.VM)) (eventbus.Event, error) {
	ev, _, err := ParseHookInputRepairs(stdin, args, cloud, protect)
	return ev, err
}

// ParseHookInputRepairs is ParseHookInput that also says what it replaced
// to read the VM XML (nil when the input could not be decoded).
func ParseHookInputRepairs(stdin []byte, args []string, cloud string, protect func(*eventbus.VM)) (eventbus.Event, *Repairs, error) {
	if err := checkCloud(cloud); err != nil {
		return eventbus.Event{}, nil, err
	}
	vm, fix, err := decodeHookInput(stdin, args, cloud)
	if err != nil {
		return eventbus.Event{}, fix, fmt.Errorf("decode hook input: %w", err)
	}
	if protect == nil {
		protect = func(vm *eventbus.VM) { eventbus.Secrets{}.Protect(vm) }
	}
	protect(&vm)
	ev, err := eventbus.NewEvent(vm)
	if errors.Is(err, eventbus.ErrTooLarge) {
		// Never sendable: said like any other input that cannot be used.
		return eventbus.Event{}, fix, fmt.Errorf("build event: %w: %v", ErrInvalidInput, err)
	}
	if err != nil {
		return eventbus.Event{}, fix, fmt.Errorf("build event: %w", err)
	}
	return ev, fix, nil
}

func decodeHookInput(stdin []byte, args []string, cloud string) (eventbus.VM, *Repairs, error) {
	in := stdin
	if len(trimSpace(in)) == 0 {
		in = []byte(strings.Join(args, " "))
	}
	in = trimSpace(in)
	if len(in) == 0 {
		if len(args) == 0 {
			return eventbus.VM{}, nil, fmt.Errorf("%w: empty stdin and no arguments", ErrInvalidInput)
		}
		return eventbus.VM{}, nil, fmt.Errorf("%w: stdin and arguments are empty", ErrInvalidInput)
	}
	if i := bytes.IndexAny(in, "\r\n"); i >= 0 {
		return eventbus.VM{}, nil, fmt.Errorf("%w: line break at offset %d: want one line, strict base64 without line breaks", ErrInvalidInput, i)
	}
	tok := in
	if i := bytes.IndexFunc(in, isSpace); i >= 0 {
		tok = in[:i]
	}
	if n := int64(len(tok)) / 4 * 3; n-2 > MaxInputSize {
		return eventbus.VM{}, nil, tooLarge(n)
	}
	doc := make([]byte, strictBase64.DecodedLen(len(tok)))
	n, err := strictBase64.Decode(doc, tok)
	if err != nil {
		return eventbus.VM{}, nil, base64Error(err, len(tok))
	}
	return parseVM(doc[:n], cloud)
}

// base64Error explains a decoding error of token 1 without quoting it.
func base64Error(err error, n int) error {
	var c base64.CorruptInputError
	switch {
	case n%4 != 0:
		return fmt.Errorf("%w: token 1 is not valid base64 (length %d is not a multiple of 4: missing padding?)", ErrInvalidInput, n)
	case errors.As(err, &c):
		return fmt.Errorf("%w: token 1 is not valid base64 (illegal byte at offset %d)", ErrInvalidInput, int64(c))
	}
	return fmt.Errorf("%w: token 1 is not valid base64", ErrInvalidInput)
}

// isSpace reports ASCII white space, the separators Ruby's split(' ') uses.
func isSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

func trimSpace(b []byte) []byte { return bytes.TrimFunc(b, isSpace) }
