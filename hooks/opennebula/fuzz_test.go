package opennebula

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
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
	if _, err := eventbus.Unmarshal(b); err != nil {
		t.Fatalf("event does not round-trip: %v", err)
	}
}
