package eventbus

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
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

// SealedPrefix starts the value of a sealed secret attribute.
const SealedPrefix = "sha256:"

// Seal returns what a secret attribute's value travels as: "sha256:" and
// the hex SHA-256 of a domain tag, the VM's cloud and id, and the value.
// The bus, the KV buckets and the dead letters then never hold the secret,
// yet a candidate (the challengePassword of a CSR) can be checked with
// MatchSecret. The VM in the hash keeps equal secrets of two VMs apart.
func Seal(cloud, id, value string) string {
	h := sha256.New()
	for _, s := range []string{"vmglue-secret-v1", cloud, id, value} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return SealedPrefix + hex.EncodeToString(h.Sum(nil))
}

// SealSecrets replaces, in place, the value of every secret attribute (see
// SecretAttribute) that is not empty and not sealed yet with its Seal.
// Sources call it before building the event.
func (vm *VM) SealSecrets() {
	for k, v := range vm.Attributes {
		if v != "" && SecretAttribute(k) && !strings.HasPrefix(v, SealedPrefix) {
			vm.Attributes[k] = Seal(vm.Cloud, vm.ID, v)
		}
	}
}

// MatchSecret reports, in constant time, whether candidate is the secret
// that stored (an attribute value of vm) holds: sealed, or in clear text as
// events from before sealing carry it. An empty stored value matches
// nothing.
func MatchSecret(vm *VM, stored, candidate string) bool {
	if stored == "" {
		return false
	}
	if strings.HasPrefix(stored, SealedPrefix) {
		candidate = Seal(vm.Cloud, vm.ID, candidate)
	}
	return subtle.ConstantTimeCompare([]byte(stored), []byte(candidate)) == 1
}
