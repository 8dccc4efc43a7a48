package api

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"
)

// fastResult reads a successful or failed answer laid out as xmlrpc-c
// writes it: one array of scalar values (<boolean>, <string>, <i4>, <int>,
// <i8>). It exists because the body of a pool page is megabytes of escaped
// XML, which kolo/xmlrpc (encoding/xml, byte by byte) decodes at a few MB/s;
// here it is one scan and one unescape. ok is false for anything else (a
// fault, a struct, CDATA, an unknown entity): the caller then decodes with
// kolo/xmlrpc, which is the reference (TestFastResultMatchesKolo).
func fastResult(raw []byte) (values []any, ok bool) {
	p := scanner{b: raw}
	// Only the declarations xmlrpc-c and the Go servers write.
	for _, decl := range []string{`<?xml version="1.0" encoding="UTF-8"?>`, `<?xml version="1.0"?>`} {
		if p.has(decl) {
			p.i += len(decl)
			break
		}
	}
	if !p.tag("<methodResponse>") || !p.tag("<params>") || !p.tag("<param>") || !p.tag("<value>") ||
		!p.tag("<array>") || !p.tag("<data>") {
		return nil, false
	}
	for {
		p.space()
		if p.has("</data>") {
			break
		}
		if !p.tag("<value>") {
			return nil, false
		}
		p.space()
		typ, ok := p.open()
		switch typ {
		case "boolean", "i4", "int", "i8", "string":
		default:
			ok = false
		}
		if !ok {
			return nil, false
		}
		end := bytes.Index(p.b[p.i:], []byte("</"+typ+">"))
		if end < 0 {
			return nil, false
		}
		text := p.b[p.i : p.i+end]
		p.i += end + len(typ) + 3
		var v any // an empty value is nil, as kolo/xmlrpc has it
		switch {
		case len(text) == 0:
		case typ == "boolean":
			switch string(bytes.TrimSpace(text)) {
			case "1":
				v = true
			case "0":
				v = false
			default:
				return nil, false
			}
		case typ == "i4" || typ == "int" || typ == "i8":
			n, err := strconv.ParseInt(string(bytes.TrimSpace(text)), 10, 64)
			if err != nil {
				return nil, false
			}
			v = n
		default: // string
			s, ok := unescape(text)
			if !ok {
				return nil, false
			}
			v = s
		}
		values = append(values, v)
		if !p.tag("</value>") {
			return nil, false
		}
	}
	p.i += len("</data>")
	for _, end := range []string{"</array>", "</value>", "</param>", "</params>", "</methodResponse>"} {
		if !p.tag(end) {
			return nil, false
		}
	}
	p.space()
	return values, p.i == len(p.b)
}

// scanner walks the answer; whitespace between tags is skipped.
type scanner struct {
	b []byte
	i int
}

func (p *scanner) space() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\r' || p.b[p.i] == '\n') {
		p.i++
	}
}

func (p *scanner) has(s string) bool { return bytes.HasPrefix(p.b[p.i:], []byte(s)) }

// tag consumes s after optional whitespace.
func (p *scanner) tag(s string) bool {
	p.space()
	if !p.has(s) {
		return false
	}
	p.i += len(s)
	return true
}

// open consumes "<name>" and returns name (no attributes, no empty element).
func (p *scanner) open() (string, bool) {
	if !p.has("<") {
		return "", false
	}
	j := bytes.IndexByte(p.b[p.i:], '>')
	if j < 2 {
		return "", false
	}
	name := string(p.b[p.i+1 : p.i+j])
	for _, c := range name {
		if c < 'a' || c > 'z' {
			if c < '0' || c > '9' {
				return "", false
			}
		}
	}
	p.i += j + 1
	return name, true
}

// unescape decodes the character data of a string value as encoding/xml
// does: the five entities and character references, line ends normalized
// to \n. Markup inside (a CDATA section, an element) is not handled.
func unescape(b []byte) (string, bool) {
	if bytes.IndexByte(b, '<') >= 0 || !validXML(b) {
		return "", false
	}
	if bytes.IndexByte(b, '&') < 0 && bytes.IndexByte(b, '\r') < 0 {
		return string(b), true
	}
	var out strings.Builder
	out.Grow(len(b))
	for i := 0; i < len(b); {
		c := b[i]
		switch c {
		case '\r':
			out.WriteByte('\n')
			i++
			if i < len(b) && b[i] == '\n' {
				i++
			}
			continue
		case '&':
		default:
			j := i + 1
			for j < len(b) && b[j] != '&' && b[j] != '\r' {
				j++
			}
			out.Write(b[i:j])
			i = j
			continue
		}
		semi := bytes.IndexByte(b[i:], ';')
		if semi < 2 || semi > 12 {
			return "", false
		}
		ent := string(b[i+1 : i+semi])
		switch ent {
		case "lt":
			out.WriteByte('<')
		case "gt":
			out.WriteByte('>')
		case "amp":
			out.WriteByte('&')
		case "quot":
			out.WriteByte('"')
		case "apos":
			out.WriteByte('\'')
		default:
			if ent[0] != '#' {
				return "", false
			}
			var n uint64
			var err error
			if len(ent) > 1 && ent[1] == 'x' {
				n, err = strconv.ParseUint(ent[2:], 16, 32)
			} else {
				n, err = strconv.ParseUint(ent[1:], 10, 32)
			}
			if err != nil || !validXMLChar(rune(n)) {
				return "", false
			}
			out.WriteRune(rune(n))
		}
		i += semi + 1
	}
	return out.String(), true
}

// validXMLChar is XML 1.0's Char production.
func validXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// validXML reports whether b is UTF-8 made of XML characters only.
func validXML(b []byte) bool {
	for i := 0; i < len(b); {
		c := b[i]
		if c >= 0x20 && c < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 || !validXMLChar(r) {
			return false
		}
		i += n
	}
	return true
}
