package eventbus

import (
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"strings"
)

// RedactedValue replaces the value of a secret attribute: sources put it
// on the bus instead of the value (Secrets.Protect), the ops commands print
// it for an older event that still carries one.
const RedactedValue = "(redacted)"

// DefaultSecretPatterns mark a user attribute as a secret by its name:
// shell patterns (path.Match) over the upper-cased name; a pattern starting
// with "!" exempts the names it matches, and exemptions win. PASS covers
// ROOT_PASS, DB_PASS, PASSWORD, PASSWD and PASSPHRASE; a name ending in KEY
// or with a KEY_ word is a key (API_KEY, SSH_KEY, KEY_DATA) unless it is a
// public one (SSH_PUBLIC_KEY, *_PUBKEY). KEYBOARD or SSH_AUTHORIZED_KEYS are
// not secrets. The price of a pattern that catches too much (PASSENGER) is
// a value no worker sees; the price of one that misses is a secret in the
// 30-day stream: the defaults err on the first side.
var DefaultSecretPatterns = []string{
	"*PASS*", "*PWD*", "*SECRET*", "*TOKEN*", "*CHALLENGE*", "*CREDENTIAL*", "*PRIVATE*", "*PSK*",
	"*KEY", "*KEY_*", "*APIKEY*",
	"!*PUBLIC_KEY", "!*PUBLIC_KEY_*", "!*PUBKEY", "!*PUB_KEY",
}

// SecretNames decides which attribute names are secrets: the default
// patterns plus the configured ones. The zero value is the defaults.
type SecretNames struct {
	secret, exempt []string
}

// NewSecretNames returns DefaultSecretPatterns plus extra (patterns as in
// DefaultSecretPatterns: "ROOT_PIN", "*_PIN", "!BYPASS_*"). Extra patterns
// can only add secrets, or exempt names explicitly with "!".
func NewSecretNames(extra []string) (*SecretNames, error) {
	n := &SecretNames{}
	for _, p := range append(DefaultSecretPatterns[:len(DefaultSecretPatterns):len(DefaultSecretPatterns)], extra...) {
		p = strings.ToUpper(strings.TrimSpace(p))
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		if p == "" {
			continue
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("secret attribute pattern %q: %w", p, err)
		}
		if neg {
			n.exempt = append(n.exempt, p)
		} else {
			n.secret = append(n.secret, p)
		}
	}
	return n, nil
}

// ParseSecretNames is NewSecretNames over a comma-separated list (the
// hook's VMGLUE_SECRET_ATTRIBUTES).
func ParseSecretNames(list string) (*SecretNames, error) {
	var extra []string
	for _, p := range strings.Split(list, ",") {
		if p = strings.TrimSpace(p); p != "" {
			extra = append(extra, p)
		}
	}
	return NewSecretNames(extra)
}

// defaultNames is SecretNames of the defaults.
var defaultNames = func() *SecretNames {
	n, err := NewSecretNames(nil)
	if err != nil {
		panic(err)
	}
	return n
}()

// Secret reports whether an attribute of that name is a secret (case does
// not matter). A nil or zero SecretNames uses the defaults.
func (n *SecretNames) Secret(name string) bool {
	if n == nil || (n.secret == nil && n.exempt == nil) {
		n = defaultNames
	}
	u := strings.ToUpper(name)
	match := func(ps []string) bool {
		for _, p := range ps {
			if ok, _ := path.Match(p, u); ok {
				return true
			}
		}
		return false
	}
	return match(n.secret) && !match(n.exempt)
}

// SecretAttribute reports whether an attribute of that name is a secret
// under DefaultSecretPatterns.
func SecretAttribute(name string) bool { return defaultNames.Secret(name) }

// Redacted returns vm with the value of every secret attribute (see
// SecretAttribute) replaced by RedactedValue, and whether there was one.
// vm itself is not changed: the copy gets its own Attributes map. A value
// that is already a challenge MAC is kept (it reveals nothing).
func (vm *VM) Redacted() (*VM, bool) {
	return defaultNames.Redact(vm)
}

// Redact is VM.Redacted with the secret names n (nil: the defaults).
func (n *SecretNames) Redact(vm *VM) (*VM, bool) {
	var out *VM
	for k, v := range vm.Attributes {
		if v == "" || v == RedactedValue || strings.HasPrefix(v, ChallengePrefix) || !n.Secret(k) {
			continue
		}
		if out == nil {
			c := *vm
			c.Attributes = maps.Clone(vm.Attributes)
			out = &c
		}
		out.Attributes[k] = RedactedValue
	}
	if out == nil {
		return vm, false
	}
	return out, true
}

// RedactEventJSON returns the event JSON b with the secret attributes of
// its VM redacted. b is returned unchanged when it holds no secret or is not
// a readable event.
func RedactEventJSON(b []byte) []byte { return defaultNames.RedactEventJSON(b) }

// RedactEventJSON is the package's RedactEventJSON with the secret names n
// (nil: the defaults).
func (n *SecretNames) RedactEventJSON(b []byte) []byte {
	ev, err := Unmarshal(b)
	if err != nil {
		return b
	}
	vm, changed := n.Redact(&ev.Data)
	if !changed {
		return b
	}
	ev.Data = *vm
	out, err := json.Marshal(ev)
	if err != nil {
		return b
	}
	return out
}
