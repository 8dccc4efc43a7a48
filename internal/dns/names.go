package dns

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	mdns "github.com/miekg/dns"
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
		if p := "xn--" + punycode(l); len(p) <= 63 {
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

// punycode encodes s (RFC 3492, the Bootstring parameters of IDNA).
func punycode(s string) string {
	const base, tmin, tmax, skew, damp = 36, 1, 26, 38, 700
	digit := func(d int) byte {
		if d < 26 {
			return byte('a' + d)
		}
		return byte('0' + d - 26)
	}
	adapt := func(delta, num int, first bool) int {
		if first {
			delta /= damp
		} else {
			delta /= 2
		}
		delta += delta / num
		k := 0
		for delta > ((base-tmin)*tmax)/2 {
			delta /= base - tmin
			k += base
		}
		return k + (base-tmin+1)*delta/(delta+skew)
	}
	runes := []rune(s)
	var out []byte
	for _, r := range runes {
		if r < 0x80 {
			out = append(out, byte(r))
		}
	}
	h, b := len(out), len(out)
	if b > 0 {
		out = append(out, '-')
	}
	n, delta, bias := 0x80, 0, 72
	for h < len(runes) {
		m := rune(0x7fffffff)
		for _, r := range runes {
			if int(r) >= n && r < m {
				m = r
			}
		}
		delta += (int(m) - n) * (h + 1)
		n = int(m)
		for _, r := range runes {
			if int(r) < n {
				delta++
			}
			if int(r) != n {
				continue
			}
			q := delta
			for k := base; ; k += base {
				t := k - bias
				if t < tmin {
					t = tmin
				} else if t > tmax {
					t = tmax
				}
				if q < t {
					break
				}
				out = append(out, digit(t+(q-t)%(base-t)))
				q = (q - t) / (base - t)
			}
			out = append(out, digit(q))
			bias = adapt(delta, h+1, h == b)
			delta = 0
			h++
		}
		delta++
		n++
	}
	return string(out)
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
