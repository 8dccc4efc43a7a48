package opennebula

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxDepth bounds element nesting in a document, counted from the root
// (VM_POOL/VM/TEMPLATE/NIC/IP is 5). Real VM documents stay below 10.
const maxDepth = 64

// node is an element of a document, reduced to what the mapping reads.
// Elements that the mapping never looks at are skipped while reading, so a
// large MONITORING or SNAPSHOTS section costs no memory.
type node struct {
	name   string  // local name
	text   []byte  // character data of a leaf; not kept once a child appears
	kids   []*node // kept children, in document order
	nested bool    // the element has element children (kept or not)
}

// child returns the first kept child named name, or nil.
func (n *node) child(name string) *node {
	if n == nil {
		return nil
	}
	for _, c := range n.kids {
		if c.name == name {
			return c
		}
	}
	return nil
}

// children returns every kept child named name, or all of them for "".
func (n *node) children(name string) []*node {
	if n == nil {
		return nil
	}
	if name == "" {
		return n.kids
	}
	var out []*node
	for _, c := range n.kids {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

// value returns the trimmed text of the first child named name, and whether
// that child exists.
func (n *node) value(name string) (string, bool) {
	c := n.child(name)
	if c == nil {
		return "", false
	}
	return c.str(), true
}

// str returns the trimmed text of a leaf, "" for an element with children.
func (n *node) str() string {
	if n.nested {
		return ""
	}
	return strings.TrimSpace(string(n.text))
}

// keepVM reports whether an element at path (root "VM" first) is read into
// the tree: the VM's own scalars, TEMPLATE NICs and CONTEXT/SET_HOSTNAME,
// USER_TEMPLATE scalars and HISTORY records.
func keepVM(path []string) bool {
	switch len(path) {
	case 1, 2:
		return true
	case 3:
		switch path[1] {
		case "TEMPLATE":
			switch path[2] {
			case "NIC", "NIC_ALIAS", "PCI", "CONTEXT":
				return true
			}
		case "USER_TEMPLATE":
			return true
		case "HISTORY_RECORDS":
			return path[2] == "HISTORY"
		}
	case 4:
		switch path[1] {
		case "TEMPLATE":
			return path[2] != "CONTEXT" || path[3] == "SET_HOSTNAME"
		case "HISTORY_RECORDS":
			return true
		}
	}
	return false
}

// reader reads elements from a decoder, tracking the depth of the document.
type reader struct {
	d   *xml.Decoder
	off int      // added to every depth: 1 while reading a VM inside VM_POOL
	fix *Repairs // what repair replaced, attributed to elements as they are read
}

// newReader reads doc after repair: malformed bytes become U+FFFD.
func newReader(doc []byte) *reader {
	doc, fix := repair(doc)
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	return &reader{d: d, fix: fix}
}

var errTooDeep = fmt.Errorf("elements nested deeper than %d", maxDepth)

// root returns the start tag of the document element.
func (r *reader) root() (xml.StartElement, error) {
	for {
		tok, err := r.d.Token()
		if err == io.EOF {
			return xml.StartElement{}, errors.New("no root element")
		}
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return xml.StartElement{}, errors.New("text before the root element")
			}
		}
	}
}

// end checks that nothing but white space, comments and processing
// instructions follow the root element.
func (r *reader) end() error {
	for {
		tok, err := r.d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return fmt.Errorf("second root element %s", clip(t.Name.Local))
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return errors.New("text after the root element")
			}
		}
	}
}

// read reads the children of n up to its end tag. path names n and its
// ancestors; keep decides which descendants are kept.
func (r *reader) read(n *node, path []string, keep func([]string) bool) error {
	for {
		tok, err := r.d.Token()
		if err != nil {
			return eofIsUnexpected(err)
		}
		r.fix.note(r.d.InputOffset(), path)
		switch t := tok.(type) {
		case xml.StartElement:
			n.nested, n.text = true, nil
			if r.off+len(path) >= maxDepth {
				return errTooDeep
			}
			p := append(path[:len(path):len(path)], t.Name.Local)
			if !keep(p) {
				err := r.skip(len(p))
				r.fix.note(r.d.InputOffset(), p)
				if err != nil {
					return err
				}
				continue
			}
			c := &node{name: t.Name.Local}
			n.kids = append(n.kids, c)
			if err := r.read(c, p, keep); err != nil {
				return err
			}
		case xml.CharData:
			if !n.nested {
				n.text = append(n.text, t...)
			}
		case xml.EndElement:
			return nil
		}
	}
}

// skip reads up to the end tag of an element at depth (1 for the root,
// before r.off is added), keeping nothing.
func (r *reader) skip(depth int) error {
	for open := 1; open > 0; {
		tok, err := r.d.Token()
		if err != nil {
			return eofIsUnexpected(err)
		}
		switch tok.(type) {
		case xml.StartElement:
			open++
			if r.off+depth+open-1 > maxDepth {
				return errTooDeep
			}
		case xml.EndElement:
			open--
		}
	}
	return nil
}

func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// clip returns s quoted and cut to a few dozen bytes, for error messages.
func clip(s string) string {
	const n = 40
	if len(s) > n {
		return fmt.Sprintf("%q…", s[:n])
	}
	return fmt.Sprintf("%q", s)
}

// oneLine makes an error text safe for a one-line message: no line breaks,
// at most 160 bytes.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = strings.ToValidUTF8(s[:160], "") + "…"
	}
	return s
}
