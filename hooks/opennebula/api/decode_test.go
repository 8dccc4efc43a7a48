package api

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kolo/xmlrpc"
)

// answers are responses as xmlrpc-c writes them, and a few it does not.
var answers = []string{
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<methodResponse>\r\n<params>\r\n<param><value><array><data>\r\n<value><boolean>1</boolean></value>\r\n<value><string>&lt;VM_POOL&gt;&lt;VM&gt;&lt;NAME&gt;&lt;![CDATA[a &amp; b]]&gt;&lt;/NAME&gt;&lt;/VM&gt;&lt;/VM_POOL&gt;</string></value>\r\n<value><i4>0</i4></value>\r\n</data></array></value></param>\r\n</params>\r\n</methodResponse>\r\n",
	"<methodResponse><params><param><value><array><data><value><boolean>0</boolean></value><value><string>[one.vm.info] Error getting virtual machine [42].</string></value><value><i4>1024</i4></value><value><i4>0</i4></value><value><i8>0</i8></value></data></array></value></param></params></methodResponse>",
	"<methodResponse><params><param><value><array><data><value><boolean>1</boolean></value><value><string>x&#13;y&#x41;&quot;&apos;\r\nz\rw</string></value><value><int>0</int></value></data></array></value></param></params></methodResponse>",
	"<methodResponse><params><param><value><array><data><value><boolean>1</boolean></value><value><i4>42</i4></value><value><i4>0</i4></value></data></array></value></param></params></methodResponse>",
	"<methodResponse><params><param><value><array><data><value><boolean>1</boolean></value><value><string>émoji ✓</string></value><value><i4>0</i4></value></data></array></value></param></params></methodResponse>",
	// not fast: kolo decides
	"<methodResponse><fault><value><struct><member><name>faultCode</name><value><i4>-501</i4></value></member><member><name>faultString</name><value><string>Type mismatch</string></value></member></struct></value></fault></methodResponse>",
	"<methodResponse><params><param><value><array><data><value><boolean>1</boolean></value><value><string><![CDATA[<VM/>]]></string></value><value><i4>0</i4></value></data></array></value></param></params></methodResponse>",
	"<methodResponse><params><param><value><array><data><value><boolean>1</boolean></value><value><string>a&nbsp;b</string></value></data></array></value></param></params></methodResponse>",
	"<methodResponse><params><param><value><array><data><value><boolean>1</boolean></value><value><string>bad \x01 char</string></value></data></array></value></param></params></methodResponse>",
}

// TestFastResultMatchesKolo: wherever the fast path answers, it answers
// what kolo/xmlrpc answers.
func TestFastResultMatchesKolo(t *testing.T) {
	fast := 0
	for i, a := range answers {
		checkFast(t, i, []byte(a))
		if _, ok := fastResult([]byte(a)); ok {
			fast++
		}
	}
	if fast != 5 {
		t.Fatalf("fast path took %d answers, want the 5 xmlrpc-c ones", fast)
	}
}

func checkFast(t *testing.T, i int, raw []byte) {
	t.Helper()
	got, ok := fastResult(raw)
	if !ok {
		return
	}
	r := xmlrpc.Response(raw)
	var want []any
	if err := r.Err(); err != nil {
		t.Fatalf("answer %d: fast path took a fault: %v", i, err)
	}
	if err := r.Unmarshal(&want); err != nil {
		t.Fatalf("answer %d: fast path took what kolo refuses (%v): %q", i, err, raw)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("answer %d: fast %#v, kolo %#v", i, got, want)
	}
}

func FuzzFastResult(f *testing.F) {
	for _, a := range answers {
		f.Add([]byte(a))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if strings.Contains(string(raw), "<fault>") {
			return
		}
		checkFast(t, 0, raw)
	})
}
