package opennebula

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
)

// seedDocs adds every testdata document to the fuzz corpus through add.
func seedDocs(f *testing.F, add func(doc []byte)) {
	for _, file := range testdataFiles(f) {
		doc, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		add(doc)
	}
}

// checkFuzzError asserts the error contract: ErrInvalidInput, one short line.
func checkFuzzError(t *testing.T, err error) {
	msg := err.Error()
	if !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("error does not wrap ErrInvalidInput: %q", msg)
	}
	if strings.ContainsAny(msg, "\r\n") || len(msg) >= 200 {
		t.Fatalf("error is not one short line: %q", msg)
	}
}

func FuzzParseHookInput(f *testing.F) {
	seedDocs(f, func(doc []byte) {
		f.Add([]byte(base64.StdEncoding.EncodeToString(doc) + " running"))
	})
	f.Add([]byte(""))
	f.Add([]byte("PFZNLz4= running\n"))
	f.Add([]byte(base64.StdEncoding.EncodeToString([]byte("<VM><ID>1</ID><STATE>6</STATE><LCM_STATE>0</LCM_STATE><NAME>\xff\x01</NAME></VM>")) + " done"))
	f.Fuzz(func(t *testing.T, in []byte) {
		// The same tokens as stdin (ARGUMENTS_STDIN=yes) and as argv
		// (without it): both paths keep the error contract.
		for _, args := range [][]string{nil, strings.Fields(string(in))} {
			stdin := in
			if args != nil {
				stdin = nil
				if len(args) == 0 {
					continue
				}
			}
			ev, err := ParseHookInput(stdin, args, testCloud, nil)
			if err != nil {
				checkFuzzError(t, err)
				continue
			}
			if err := ev.Validate(); err != nil {
				t.Fatalf("ParseHookInput (args %v) succeeded with an invalid event: %v", args != nil, err)
			}
		}
	})
}

func FuzzParseVM(f *testing.F) {
	seedDocs(f, func(doc []byte) { f.Add(doc) })
	f.Add([]byte("<VM><ID>1</ID><STATE>3</STATE><LCM_STATE>3</LCM_STATE></VM>"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		if vms, err := ParsePool(doc, testCloud); err != nil {
			checkFuzzError(t, err)
		} else {
			for _, vm := range vms {
				checkFuzzVM(t, vm)
			}
		}
		vm, err := ParseVM(doc, testCloud)
		if err != nil {
			checkFuzzError(t, err)
			return
		}
		checkFuzzVM(t, vm)
	})
}

// checkFuzzVM asserts that a parsed VM always makes a valid, encodable event.
func checkFuzzVM(t *testing.T, vm eventbus.VM) {
	ev, err := eventbus.NewEvent(vm)
	if err != nil {
		t.Fatalf("parse succeeded but NewEvent failed: %v", err)
	}
	if err := ev.Validate(); err != nil {
		t.Fatalf("parse succeeded with an invalid event: %v", err)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("marshal event: %v", err)
	}
	if len(b) > eventbus.MaxEventSize {
		t.Fatalf("event of %d bytes, max %d", len(b), eventbus.MaxEventSize)
	}
	if _, err := eventbus.Unmarshal(b); err != nil {
		t.Fatalf("event does not round-trip: %v", err)
	}
}

// A tenant's USER_TEMPLATE value, any bytes and any size: the event of a
// DONE is always built, fits in one NATS message, keeps its identity and
// state, and the note counts what was replaced.
func FuzzUserTemplateValue(f *testing.F) {
	f.Add([]byte("web"))
	f.Add([]byte("a\xffb\xc3\x28\x01"))
	f.Add([]byte(strings.Repeat("\xe2\x82", 3000)))
	f.Add([]byte(strings.Repeat("x", 10<<10)))
	f.Fuzz(func(t *testing.T, value []byte) {
		v := strings.ReplaceAll(string(value), "]]>", "")
		doc := "<VM><ID>9</ID><STATE>6</STATE><LCM_STATE>0</LCM_STATE><TEMPLATE><NIC><IP>10.0.0.9</IP></NIC></TEMPLATE>" +
			"<USER_TEMPLATE><NOTE><![CDATA[" + v + "]]></NOTE></USER_TEMPLATE></VM>"
		in := []byte(base64.StdEncoding.EncodeToString([]byte(doc)) + " done")
		ev, fix, err := ParseHookInputRepairs(in, nil, testCloud, nil)
		if err != nil {
			t.Fatalf("DONE with NOTE %q: %v", clip(v), err)
		}
		if ev.Data.Kind != eventbus.KindDeleted || ev.Data.ID != "9" || len(ev.Data.NICs) != 1 || ev.Data.NICs[0].IP != "10.0.0.9" {
			t.Fatalf("identity, state or address lost: %+v", ev.Data)
		}
		if fixed, _ := repair([]byte(v)); (fix.Bytes == 0) != (string(fixed) == v) {
			t.Fatalf("note %q for a value valid %v", fix, string(fixed) == v)
		}
		checkFuzzVM(t, ev.Data)
	})
}

// FuzzParsePool fuzzes the pool parser the sweep reads one.vmpool.infoextended
// pages with, seeded with pool documents of one, two and many VMs.
func FuzzParsePool(f *testing.F) {
	var vms [][]byte
	seedDocs(f, func(doc []byte) {
		if bytes.HasPrefix(bytes.TrimSpace(doc), []byte("<VM_POOL")) {
			f.Add(doc)
			return
		}
		if bytes.HasPrefix(bytes.TrimSpace(doc), []byte("<?xml")) {
			if i := bytes.Index(doc, []byte("?>")); i >= 0 {
				doc = doc[i+2:]
			}
		}
		vms = append(vms, doc)
		f.Add(slices.Concat([]byte("<VM_POOL>"), doc, []byte("</VM_POOL>")))
	})
	f.Add(slices.Concat([]byte("<VM_POOL>"), bytes.Join(vms, nil), []byte("</VM_POOL>")))
	f.Add([]byte("<VM_POOL></VM_POOL>"))
	f.Add([]byte("<VM_POOL><VM><ID>1</ID><STATE>3</STATE><LCM_STATE>3</LCM_STATE></VM><OTHER/></VM_POOL>"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		vms, err := ParsePool(doc, testCloud)
		if err != nil {
			checkFuzzError(t, err)
			return
		}
		for _, vm := range vms {
			checkFuzzVM(t, vm)
		}
	})
}
