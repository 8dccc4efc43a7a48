package opennebula

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkParseHookInput is the hook's CPU work for one event: decode,
// repair, parse, map, bound and encode (NewEvent checks the encoded size).
// Figures: ns/op and B/op for a real corpus document, the same with a
// malformed byte, and with a 2 MiB USER_TEMPLATE value that is cut.
func BenchmarkParseHookInput(b *testing.B) {
	root := os.Getenv("VMGLUE_CORPUS")
	if root == "" {
		root = filepath.Join("..", "..", "..", "shared", "corpus")
	}
	doc, err := os.ReadFile(filepath.Join(root, "opennebula", "vm-done-vrouter-2nics.xml"))
	if err != nil {
		b.Fatalf("corpus document (set VMGLUE_CORPUS): %v", err)
	}
	for _, bc := range []struct{ name, insert string }{
		{"corpus", ""},
		{"malformed byte", "<NOTE>caf\xe9</NOTE>"},
		{"2MiB attribute", "<BLOB>" + strings.Repeat("x", 2<<20) + "</BLOB>"},
	} {
		d := strings.Replace(string(doc), "<USER_TEMPLATE>", "<USER_TEMPLATE>"+bc.insert, 1)
		in := []byte(base64.StdEncoding.EncodeToString([]byte(d)) + " done")
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseHookInput(in, nil, testCloud, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
