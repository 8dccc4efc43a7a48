package opennebula

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
)

// hookInput returns stdin as HEM writes it: "<base64> <words...>" with no
// trailing newline.
func hookInput(doc []byte, words ...string) []byte {
	return []byte(strings.Join(append([]string{base64.StdEncoding.EncodeToString(doc)}, words...), " "))
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(testdataDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestParseHookInput(t *testing.T) {
	doc := readTestdata(t, "running-2nics.xml")
	b64 := base64.StdEncoding.EncodeToString(doc)
	want, err := ParseHookInput(hookInput(doc), nil, testCloud, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want.Data.ID != "42" || want.Data.Kind != eventbus.KindRunning || want.Source != "opennebula://"+testCloud {
		t.Fatalf("unexpected event %+v", want)
	}
	tests := []struct {
		name  string
		stdin string
		args  []string
	}{
		{name: "stdin without newline", stdin: b64},
		{name: "stdin with word", stdin: b64 + " running"},
		{name: "stdin with trailing newline", stdin: b64 + " running\n"},
		{name: "stdin with CRLF and spaces", stdin: "  " + b64 + "\trunning  \r\n"},
		{name: "stdin with extra words", stdin: b64 + " -m -p 5"},
		{name: "state word is ignored", stdin: b64 + " done"},
		{name: "args", args: []string{b64, "running"}},
		{name: "args with whitespace-only stdin", stdin: " \n", args: []string{b64}},
		{name: "args as one string", args: []string{b64 + " running"}},
		{name: "stdin wins over args", stdin: b64, args: []string{"not-base64!"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHookInput([]byte(tt.stdin), tt.args, testCloud, nil)
			if err != nil {
				t.Fatalf("ParseHookInput: %v", err)
			}
			if got.ID != want.ID {
				t.Errorf("id %s, want %s", got.ID, want.ID)
			}
		})
	}
}

func TestParseHookInputErrors(t *testing.T) {
	doc := readTestdata(t, "running-2nics.xml")
	b64 := base64.StdEncoding.EncodeToString(doc)
	// A document whose base64 ends in "==", to test missing padding.
	padded := append(bytes.Clone(doc), bytes.Repeat([]byte(" "), (4-len(doc)%3)%3)...)
	padB64 := base64.StdEncoding.EncodeToString(padded)
	if !strings.HasSuffix(padB64, "==") {
		t.Fatalf("padB64 does not end in ==")
	}
	host := "<HOST><ID>1</ID><NAME>kvm-a</NAME><STATE>2</STATE></HOST>"
	deep := "<VM>" + strings.Repeat("<A>", 100) + strings.Repeat("</A>", 100) + "</VM>"
	vm := func(body string) string { return b64s("<VM>" + body + "</VM>") }
	big := strings.Repeat("A", (MaxInputSize/3+1<<20)*4)
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string // part of the error text
	}{
		{"empty stdin and no args", "", nil, "empty stdin and no arguments"},
		{"whitespace stdin and empty args", " \n", []string{"", " "}, "stdin and arguments are empty"},
		{"non-alphabet byte", b64[:17] + "*" + b64[18:], nil, "illegal byte at offset 17"},
		{"url alphabet", b64[:20] + "_" + b64[21:], nil, "illegal byte at offset 20"},
		{"missing padding", strings.TrimRight(padB64, "="), nil, "missing padding"},
		{"embedded newline", b64[:60] + "\n" + b64[60:], nil, "line break at offset 60"},
		{"embedded CR in args", "", []string{b64[:76] + "\r\n" + b64[76:]}, "line break at offset 76"},
		{"truncated xml", b64s(string(doc[:len(doc)/2])) + " running", nil, "unexpected EOF"},
		{"oversized", big, nil, "too large"},
		{"host document", b64s(host), nil, `root element is "HOST", want VM`},
		{"pool document", b64s("<VM_POOL></VM_POOL>"), nil, `root element is "VM_POOL", want VM`},
		{"not xml", b64s("hello"), nil, "text before the root element"},
		{"blank xml", b64s(" \n"), nil, "no root element"},
		{"second root", b64s(string(doc) + "<VM/>"), nil, "second root element"},
		{"text after root", b64s(string(doc) + "junk"), nil, "text after the root element"},
		{"entity", b64s(`<!DOCTYPE VM [<!ENTITY a "b">]><VM><NAME>&a;</NAME></VM>`), nil, "invalid character entity &a;"},
		{"deep nesting", b64s(deep), nil, "nested deeper than 64"},
		{"missing id", vm("<STATE>3</STATE><LCM_STATE>3</LCM_STATE>"), nil, "missing VM/ID"},
		{"negative id", vm("<ID>-1</ID><STATE>3</STATE><LCM_STATE>3</LCM_STATE>"), nil, `VM/ID "-1" is not a number`},
		{"state not a number", vm("<ID>1</ID><STATE>ACTIVE</STATE><LCM_STATE>3</LCM_STATE>"), nil, `VM/STATE "ACTIVE"`},
		{"missing lcm state", vm("<ID>1</ID><STATE>3</STATE>"), nil, "missing VM/LCM_STATE"},
		{"bad time", vm("<ID>1</ID><STATE>3</STATE><LCM_STATE>3</LCM_STATE><STIME>1e9</STIME>"), nil, "VM/STIME"},
		{"time out of range", vm("<ID>1</ID><STATE>3</STATE><LCM_STATE>3</LCM_STATE><ETIME>99999999999</ETIME>"), nil, "not a Unix time"},
		{"bad seq", vm("<ID>1</ID><STATE>3</STATE><LCM_STATE>3</LCM_STATE><HISTORY_RECORDS><HISTORY><SEQ>x</SEQ></HISTORY></HISTORY_RECORDS>"), nil, "HISTORY/SEQ"},
		{"long bad id", vm("<ID>" + strings.Repeat("9x", 5000) + "</ID>"), nil, "VM/ID"},
		{"invalid utf-8 in a needed field", vm("<ID>1\xff</ID><STATE>3</STATE><LCM_STATE>3</LCM_STATE>"), nil, "VM/ID"},
		{"long element name", b64s("<" + strings.Repeat("X", 5000) + "/>"), nil, "root element is"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseHookInput([]byte(tt.stdin), tt.args, testCloud, nil)
			checkInputError(t, err, tt.want)
		})
	}
}

// checkInputError asserts an ErrInvalidInput error that is one short line
// containing want.
func checkInputError(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	msg := err.Error()
	if !errors.Is(err, ErrInvalidInput) {
		t.Errorf("error %q does not wrap ErrInvalidInput", msg)
	}
	if strings.ContainsAny(msg, "\r\n") || len(msg) >= 200 {
		t.Errorf("error is not one short line (%d bytes): %q", len(msg), msg)
	}
	if !strings.Contains(msg, want) {
		t.Errorf("error %q does not contain %q", msg, want)
	}
}

func b64s(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParseVMTooLarge(t *testing.T) {
	doc := append([]byte("<VM>"), bytes.Repeat([]byte(" "), MaxInputSize)...)
	_, err := ParseVM(doc, testCloud)
	checkInputError(t, err, "input is too large")
}

func TestInvalidCloud(t *testing.T) {
	doc := readTestdata(t, "running-2nics.xml")
	for _, cloud := range []string{"", "a.b", "with space", strings.Repeat("c", 129)} {
		t.Run("cloud "+cloud, func(t *testing.T) {
			_, err := ParseHookInput(hookInput(doc), nil, cloud, nil)
			if !errors.Is(err, eventbus.ErrInvalidEvent) || errors.Is(err, ErrInvalidInput) {
				t.Errorf("ParseHookInput: %v, want ErrInvalidEvent and not ErrInvalidInput", err)
			}
			if _, err := ParseVM(doc, cloud); !errors.Is(err, eventbus.ErrInvalidEvent) {
				t.Errorf("ParseVM: %v, want ErrInvalidEvent", err)
			}
			if _, err := ParsePool([]byte("<VM_POOL/>"), cloud); !errors.Is(err, eventbus.ErrInvalidEvent) {
				t.Errorf("ParsePool: %v, want ErrInvalidEvent", err)
			}
		})
	}
}

func TestParsePoolErrors(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"vm root", "<VM><ID>1</ID></VM>", `root element is "VM", want VM_POOL`},
		{"truncated", "<VM_POOL><VM><ID>1</ID>", "unexpected EOF"},
		{"bad vm", "<VM_POOL><VM><ID>1</ID><STATE>3</STATE><LCM_STATE>3</LCM_STATE></VM><VM><ID>x</ID></VM></VM_POOL>", "VM #2 of the pool"},
		{"deep", "<VM_POOL>" + strings.Repeat("<X>", 70) + strings.Repeat("</X>", 70) + "</VM_POOL>", "nested deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePool([]byte(tt.doc), testCloud)
			checkInputError(t, err, tt.want)
		})
	}
	vms, err := ParsePool([]byte(`<VM_POOL xmlns="http://opennebula.org/XMLSchema"/>`), testCloud)
	if err != nil || vms == nil || len(vms) != 0 {
		t.Errorf("empty pool: %v, %v; want an empty list", vms, err)
	}
}

// TestDeterministicID checks that the id depends on the snapshot only.
func TestDeterministicID(t *testing.T) {
	doc := readTestdata(t, "running-2nics.xml")
	id := func(doc []byte, words ...string) string {
		t.Helper()
		ev, err := ParseHookInput(hookInput(doc, words...), nil, testCloud, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ev.ID
	}
	first := id(doc, "running")
	if again := id(doc, "running"); again != first {
		t.Errorf("same input gave ids %s and %s", first, again)
	}
	if other := id(doc, "poweroff"); other != first {
		t.Errorf("another trailing word changed the id: %s and %s", first, other)
	}
	changed := bytes.Replace(doc, []byte("<IP>192.168.50.7</IP>"), []byte("<IP>192.168.50.8</IP>"), 1)
	if bytes.Equal(changed, doc) {
		t.Fatal("test document has no NIC IP 192.168.50.7")
	}
	if other := id(changed, "running"); other == first {
		t.Errorf("a different NIC IP gave the same id %s", first)
	}
}
