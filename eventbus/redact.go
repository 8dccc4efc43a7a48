package eventbus

import (
	"encoding/json"
	"maps"
	"strings"
)

// RedactedValue replaces the value of a secret attribute in what the ops
// commands print.
const RedactedValue = "(redacted)"

// secretWords mark an attribute name as a secret when it contains one of
// them (upper-cased): the autosign challenge (PUPPET_CHALLENGE), passwords,
// tokens, private keys.
var secretWords = []string{"PASSWORD", "PASSWD", "SECRET", "TOKEN", "CHALLENGE", "CREDENTIAL", "PRIVATE"}

// SecretAttribute reports whether a user attribute of that name is treated
// as a secret: its name contains PASSWORD, PASSWD, SECRET, TOKEN,
// CHALLENGE, CREDENTIAL or PRIVATE, or ends in KEY but not PUBLIC_KEY
// (SSH_PUBLIC_KEY is not a secret, API_KEY is). Case does not matter.
func SecretAttribute(name string) bool {
	n := strings.ToUpper(name)
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return strings.HasSuffix(n, "KEY") && !strings.HasSuffix(n, "PUBLIC_KEY")
}

// Redacted returns vm with the value of every secret attribute (see
// SecretAttribute) replaced by RedactedValue, and whether there was one.
// vm itself is not changed: the copy gets its own Attributes map.
func (vm *VM) Redacted() (*VM, bool) {
	var out *VM
	for k, v := range vm.Attributes {
		if v == "" || !SecretAttribute(k) {
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
func RedactEventJSON(b []byte) []byte {
	ev, err := Unmarshal(b)
	if err != nil {
		return b
	}
	vm, changed := ev.Data.Redacted()
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
