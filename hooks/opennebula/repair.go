package opennebula

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// maxRepairPaths bounds the element paths a Repairs names.
const maxRepairPaths = 3

// Repairs says what the parser replaced to read a document: each byte that
// is not valid UTF-8, and each character XML forbids (control characters
// other than tab, line feed and carriage return), became U+FFFD. A tenant
// writes such bytes into USER_TEMPLATE or NAME; the event must not be lost
// for them (a DONE would leave records and certificates behind). A
// replacement in a field the mapping needs (ID, STATE) still makes the
// document invalid.
type Repairs struct {
	// Bytes counts the replaced bytes.
	Bytes int
	// Where names the elements they were in ("USER_TEMPLATE/NOTE"), in
	// document order, the first few only.
	Where []string
	offs  []int64 // where each replacement starts in the repaired document
	next  int
}

// String is the hook's note: "replaced 2 malformed bytes in USER_TEMPLATE/NOTE".
func (r *Repairs) String() string {
	if r == nil || r.Bytes == 0 {
		return ""
	}
	s := fmt.Sprintf("replaced %d malformed byte", r.Bytes)
	if r.Bytes != 1 {
		s += "s"
	}
	if len(r.Where) > 0 {
		s += " in " + strings.Join(r.Where, ", ")
	}
	return s
}

// repair returns doc with every invalid UTF-8 byte and every character XML
// forbids replaced by U+FFFD, and what it replaced. A valid document is
// returned as it is, without a copy.
func repair(doc []byte) ([]byte, *Repairs) {
	r := &Repairs{}
	i := 0
	for i < len(doc) {
		c, n := utf8.DecodeRune(doc[i:])
		if !(c == utf8.RuneError && n == 1) && xmlChar(c) {
			i += n
			continue
		}
		break
	}
	if i == len(doc) {
		return doc, r
	}
	out := make([]byte, 0, len(doc)+16)
	out = append(out, doc[:i]...)
	for i < len(doc) {
		c, n := utf8.DecodeRune(doc[i:])
		if c == utf8.RuneError && n == 1 || !xmlChar(c) {
			r.offs = append(r.offs, int64(len(out)))
			r.Bytes += n
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, doc[i:i+n]...)
		}
		i += n
	}
	return out, r
}

// xmlChar reports whether XML 1.0 allows c in a document.
func xmlChar(c rune) bool {
	return c == '\t' || c == '\n' || c == '\r' || c >= 0x20 && c <= 0xD7FF ||
		c >= 0xE000 && c <= 0xFFFD || c >= 0x10000 && c <= 0x10FFFF
}

// note attributes the replacements read so far (before offset end) to the
// element at path.
func (r *Repairs) note(end int64, path []string) {
	if r == nil {
		return
	}
	for r.next < len(r.offs) && r.offs[r.next] < end {
		r.next++
		where := strings.Join(path, "/")
		if len(path) > 1 {
			where = strings.Join(path[1:], "/") // without the root VM
		}
		if where = clipPath(where); where != "" && len(r.Where) < maxRepairPaths && !slices.Contains(r.Where, where) {
			r.Where = append(r.Where, where)
		}
	}
}

// clipPath bounds a path for the hook's one line.
func clipPath(s string) string {
	if len(s) > 80 {
		return strings.ToValidUTF8(s[:80], "") + "…"
	}
	return s
}
