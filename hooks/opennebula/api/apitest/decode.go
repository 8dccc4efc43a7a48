package apitest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// xvalue is one XML-RPC <value> of a call's parameters.
type xvalue struct {
	Int     *string `xml:"int"`
	I4      *string `xml:"i4"`
	I8      *string `xml:"i8"`
	Boolean *string `xml:"boolean"`
	String  *string `xml:"string"`
	Text    string  `xml:",chardata"`
}

type xcall struct {
	Method string `xml:"methodName"`
	Params []struct {
		Value xvalue `xml:"value"`
	} `xml:"params>param"`
}

// decodeCall reads a methodCall: ints (int, i4) as int, i8 as int64 (which
// no parameter accepts, as in xmlrpc-c), booleans, strings and untyped text.
func decodeCall(body []byte) (string, []any, error) {
	var c xcall
	if err := xml.Unmarshal(body, &c); err != nil {
		return "", nil, err
	}
	var out []any
	for _, p := range c.Params {
		v := p.Value
		switch {
		case v.Int != nil || v.I4 != nil:
			s := v.Int
			if s == nil {
				s = v.I4
			}
			n, err := strconv.ParseInt(strings.TrimSpace(*s), 10, 32)
			if err != nil {
				return "", nil, fmt.Errorf("bad int %q", *s)
			}
			out = append(out, int(n))
		case v.I8 != nil:
			n, err := strconv.ParseInt(strings.TrimSpace(*v.I8), 10, 64)
			if err != nil {
				return "", nil, fmt.Errorf("bad i8 %q", *v.I8)
			}
			out = append(out, n)
		case v.Boolean != nil:
			out = append(out, strings.TrimSpace(*v.Boolean) == "1")
		case v.String != nil:
			out = append(out, *v.String)
		default:
			out = append(out, v.Text)
		}
	}
	return c.Method, out, nil
}

// element is the byte range of one element of a document.
type element struct {
	name       string
	start, end int64
	depth      int
}

// elements lists the elements of doc with their byte ranges.
func elements(doc string) ([]element, error) {
	d := xml.NewDecoder(strings.NewReader(doc))
	var (
		out   []element
		stack []int
	)
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			stack = append(stack, len(out))
			out = append(out, element{name: t.Name.Local, start: off, depth: len(stack)})
		case xml.EndElement:
			out[stack[len(stack)-1]].end = d.InputOffset()
			stack = stack[:len(stack)-1]
		}
	}
}

// splitPool returns the <VM> documents of a <VM_POOL>.
func splitPool(doc string) ([]string, error) {
	els, err := elements(doc)
	if err != nil {
		return nil, fmt.Errorf("parse vm pool: %w", err)
	}
	if len(els) == 0 || els[0].name != "VM_POOL" {
		return nil, errors.New("parse vm pool: root is not VM_POOL")
	}
	var out []string
	for _, e := range els {
		if e.depth == 2 && e.name == "VM" {
			out = append(out, doc[e.start:e.end])
		}
	}
	return out, nil
}

// parseVM reads what the server filters on and builds the pool body: the
// document with only its last HISTORY record (the highest SEQ).
func parseVM(doc string) (*vm, error) {
	els, err := elements(doc)
	if err != nil {
		return nil, fmt.Errorf("parse vm: %w", err)
	}
	if len(els) == 0 || els[0].name != "VM" {
		return nil, errors.New("parse vm: root is not VM")
	}
	v := &vm{full: doc}
	fields := map[string]*int{"ID": &v.id, "UID": &v.uid, "GID": &v.gid, "STATE": &v.state}
	var history []element
	lastSeq, last := -1, -1
	for i, e := range els {
		if p, ok := fields[e.name]; ok && e.depth == 2 {
			n, err := strconv.Atoi(innerText(doc, e))
			if err != nil {
				return nil, fmt.Errorf("parse vm: %s: %w", e.name, err)
			}
			*p = n
		}
		if e.name == "HISTORY" && e.depth == 3 {
			history = append(history, e)
			for _, c := range els[i+1:] {
				if c.start >= e.end {
					break
				}
				if c.name == "SEQ" && c.depth == 4 {
					if seq, err := strconv.Atoi(innerText(doc, c)); err == nil && seq > lastSeq {
						lastSeq, last = seq, len(history)-1
					}
				}
			}
		}
	}
	var b bytes.Buffer
	pos := int64(0)
	for i, h := range history {
		if i == last {
			continue
		}
		b.WriteString(doc[pos:h.start])
		pos = h.end
	}
	b.WriteString(doc[pos:])
	v.pool = b.String()
	return v, nil
}

// innerText is the text of a simple element (CDATA or escaped text).
func innerText(doc string, e element) string {
	var s struct {
		Text string `xml:",chardata"`
	}
	_ = xml.Unmarshal([]byte(doc[e.start:e.end]), &s)
	return strings.TrimSpace(s.Text)
}
