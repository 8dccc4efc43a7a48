package eventbus

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// DefaultChallengeAttribute is the user attribute holding a VM's Puppet
// autosign challenge.
const DefaultChallengeAttribute = "PUPPET_CHALLENGE"

// DefaultChallengeKeyFile is where the hook and `vmglue autosign` read the
// challenge key: root:oneadmin 0640 on the OpenNebula front-end,
// root:puppet 0640 on the Puppet Server host (the same key).
const DefaultChallengeKeyFile = "/etc/vmglue/challenge.key"

// ChallengePrefix starts the value of a challenge attribute on the bus:
// "hmac-sha256:" and the hex HMAC-SHA256 (ChallengeMAC).
const ChallengePrefix = "hmac-sha256:"

// MinChallengeKey is the shortest challenge key accepted, in bytes
// (`openssl rand -hex 32` writes 64).
const MinChallengeKey = 32

// ChallengeMAC is what a challenge attribute travels as: the HMAC-SHA256,
// keyed with the challenge key, of a domain tag, the VM's cloud and id,
// and the value. Without the key a reader of the stream can neither
// recover nor test a guess of the challenge; the VM in the MAC keeps the
// MAC of one VM from matching for another.
func ChallengeMAC(key []byte, cloud, id, value string) string {
	m := hmac.New(sha256.New, key)
	for _, s := range []string{"vmglue-challenge-v1", cloud, id, value} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	return ChallengePrefix + hex.EncodeToString(m.Sum(nil))
}

// MatchChallenge reports, in constant time, whether candidate (a CSR's
// challengePassword) is the challenge whose MAC vm's attribute holds
// (stored). Only a MAC matches: a clear-text, redacted or unkeyed value
// (from an older hook) matches nothing.
func MatchChallenge(key []byte, vm *VM, stored, candidate string) bool {
	if len(key) == 0 || !strings.HasPrefix(stored, ChallengePrefix) {
		return false
	}
	return hmac.Equal([]byte(stored), []byte(ChallengeMAC(key, vm.Cloud, vm.ID, candidate)))
}

// ErrNoChallengeKey is wrapped when the challenge key cannot be used.
var ErrNoChallengeKey = errors.New("no challenge key")

// ReadChallengeKey reads the challenge key file: its content without
// surrounding white space, at least MinChallengeKey bytes. A file every
// user may read is refused: any local user could then test guesses of
// every VM's challenge against the stream.
func ReadChallengeKey(file string) ([]byte, error) {
	if file == "" {
		return nil, fmt.Errorf("%w: no key file configured", ErrNoChallengeKey)
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoChallengeKey, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoChallengeKey, err)
	}
	if st.Mode().Perm()&0o004 != 0 {
		return nil, fmt.Errorf("%w: %s is readable by every user (mode %04o): chmod o-rwx it", ErrNoChallengeKey, file, st.Mode().Perm())
	}
	b := make([]byte, 4096)
	n, err := f.Read(b)
	if err != nil && n == 0 {
		return nil, fmt.Errorf("%w: read %s: %w", ErrNoChallengeKey, file, err)
	}
	key := []byte(strings.TrimSpace(string(b[:n])))
	if len(key) < MinChallengeKey {
		return nil, fmt.Errorf("%w: %s holds %d bytes, want at least %d (openssl rand -hex 32)", ErrNoChallengeKey, file, len(key), MinChallengeKey)
	}
	return key, nil
}

// Secrets is how a source keeps a VM's secrets off the bus (Protect).
type Secrets struct {
	// Names decides which attributes are secrets; nil: the defaults.
	Names *SecretNames
	// ChallengeAttribute is kept as a MAC; "": DefaultChallengeAttribute.
	ChallengeAttribute string
	// ChallengeKey returns the challenge key; it is called only for a VM
	// that has the challenge attribute. nil, or an error: no key.
	ChallengeKey func() ([]byte, error)
}

// Protect replaces, in place, the value of vm's challenge attribute by its
// ChallengeMAC, or removes the attribute when there is no key, and the
// value of every other secret attribute by RedactedValue. It returns what
// the source should say about it (the challenge that was left out and
// why); nil when nothing needs saying.
func (s Secrets) Protect(vm *VM) []string {
	challenge := s.ChallengeAttribute
	if challenge == "" {
		challenge = DefaultChallengeAttribute
	}
	var notes []string
	for k, v := range vm.Attributes {
		switch {
		case v == "":
		case strings.EqualFold(k, challenge):
			key, err := s.key()
			if err != nil {
				delete(vm.Attributes, k)
				notes = append(notes, fmt.Sprintf("%s not sent: %v", k, err))
				continue
			}
			vm.Attributes[k] = ChallengeMAC(key, vm.Cloud, vm.ID, v)
		case s.Names.Secret(k):
			vm.Attributes[k] = RedactedValue
		}
	}
	return notes
}

func (s Secrets) key() ([]byte, error) {
	if s.ChallengeKey == nil {
		return nil, fmt.Errorf("%w configured", ErrNoChallengeKey)
	}
	return s.ChallengeKey()
}
