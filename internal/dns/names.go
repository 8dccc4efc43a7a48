package dns

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	mdns "github.com/miekg/dns"
	"golang.org/x/net/idna"
)

// errInvalidName is wrapped by every name that cannot be made valid.
var errInvalidName = errors.New("invalid dns name")

// Normalize turns a host name from a template into a valid DNS name, label
// by label: lower case; a label that is already a valid LDH label (letters,
// digits, inner hyphens, at most 63 bytes, "xn--" labels included) is kept;
// otherwise every character outside [a-z0-9-] becomes '-', runs of '-'
// collapse to one, leading and trailing '-' go, and the label is cut to 63
// bytes. A label with non-ASCII letters is encoded as IDNA punycode
// ("Bücher" → "xn--bcher-kva", without Unicode normalization); if that does
// not fit in 63 bytes the non-ASCII characters are dropped instead. A final
// dot is kept (absolute name). An empty label, or a name longer than 253
// bytes, is an error.
func Normalize(name string) (string, error) {
	s := strings.TrimSpace(name)
	abs := strings.HasSuffix(s, ".")
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return "", fmt.Errorf("%w: %q is empty", errInvalidName, name)
	}
	labels := strings.Split(s, ".")
	for i, l := range labels {
		n := normalizeLabel(l)
		if n == "" {
			return "", fmt.Errorf("%w: %q: label %d (%q) has no letter or digit", errInvalidName, name, i+1, l)
		}
		labels[i] = n
	}
	out := strings.Join(labels, ".")
	if len(out) > 253 {
		return "", fmt.Errorf("%w: %q is longer than 253 bytes", errInvalidName, name)
	}
	if abs {
		out += "."
	}
	return out, nil
}

func normalizeLabel(l string) string {
	l = strings.ToLower(l)
	if validLabel(l) {
		return l
	}
	var b strings.Builder
	ascii := true
	for _, r := range l {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			b.WriteRune(unicode.ToLower(r))
			ascii = false
		default:
			b.WriteByte('-')
		}
	}
	l = collapse(b.String())
	if !ascii {
		if p, err := idna.Punycode.ToASCII(l); err == nil && len(p) <= 63 {
			return p
		}
		l = collapse(strings.Map(func(r rune) rune {
			if r >= utf8.RuneSelf {
				return -1
			}
			return r
		}, l))
	}
	if len(l) > 63 {
		l = strings.TrimRight(l[:63], "-")
	}
	return l
}

// collapse folds runs of '-' into one and trims '-' at both ends.
func collapse(s string) string {
	for strings.Contains(s, "--") {
		s = strings.ReplaceAll(s, "--", "-")
	}
	return strings.Trim(s, "-")
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// zoneOf returns the longest zone of zones that holds name, or "".
func zoneOf(name string, zones []string) string {
	best := ""
	for _, z := range zones {
		if mdns.IsSubDomain(z, name) && len(z) > len(best) {
			best = z
		}
	}
	return best
}

// canonicalZones returns the zones lower-cased and fully qualified.
func canonicalZones(zs []string) []string {
	out := make([]string, len(zs))
	for i, z := range zs {
		out[i] = mdns.CanonicalName(z)
	}
	return out
}
