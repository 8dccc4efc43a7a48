// Package apitest is an OpenNebula XML-RPC server for tests: it answers
// one.vm.info and one.vmpool.info / one.vmpool.infoextended as oned does,
// from VM documents the test gives it (the corpus's real ones, or generated
// ones). oned itself cannot be installed on the test machines (no packages
// for this system, and it needs its database and drivers), so this server
// implements the documented calls faithfully instead (the facts file's §5,
// from OpenNebula's Request.cc, RequestManagerPoolInfoFilter.cc and
// PoolSQL::oid_filter):
//
//   - the answer is one array: [true, body, 0] on success, [false, message,
//     code, 0, replication index as <i8>] on failure, integers as <i4>,
//     CRLF line ends, as xmlrpc-c writes them;
//   - the session string is checked on every call: a wrong one is
//     [false, "[method] User couldn't be authenticated, aborting call.", 0x100];
//   - one.vmpool.info(extended)(filter, start, end, state[, kv]): filter -2
//     all users, -1 uid 0 or gid 0 (oneadmin's own view), -3 uid 0, -4 gid
//     0, >= 0 that uid; start == -1 no id range; end < -1 a page (offset
//     start, size -end); else ids from start to end (-1: no upper bound);
//     state -2 all, -1 all but DONE, else that STATE; the pool body holds
//     only the last HISTORY record of each VM, as oned stores it (one.vmpool.info
//     answers the same bodies: vmglue does not use oned's short form);
//   - one.vm.info(id[, decrypt]) answers the full document, or
//     [false, "[one.vm.info] Error getting virtual machine [id].", 0x400];
//   - an unknown method or parameters of the wrong type are an XML-RPC
//     fault (-506, -501), as xmlrpc-c answers them.
//
// Tests can inject answers (Inject) for the faults oned gives rarely.
package apitest

import (
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Server is a running fake oned. Its methods are safe for concurrent use.
type Server struct {
	// URL is the XML-RPC endpoint (http://127.0.0.1:port/RPC2).
	URL string
	// Session is the "user:password" string the server accepts.
	Session string

	mu     sync.Mutex
	vms    map[int]*vm
	calls  []Call
	inject func(c Call) *Reply
}

// vm is one VM document, as one.vm.info answers it and as the pool holds it.
type vm struct {
	id, uid, gid, state int
	full, pool          string
}

// Call is one call the server received (the session is left out).
type Call struct {
	Method string
	Params []any // int, bool or string
}

// Reply is an injected answer: a fault, an OpenNebula error, or a body.
type Reply struct {
	FaultCode int    // != 0: an XML-RPC fault
	ErrorCode int    // != 0: [false, Message, ErrorCode, 0, 0]
	Message   string // fault string or error message
	Body      string // success body
	HTTPCode  int    // != 0: this HTTP status, no XML-RPC answer
}

// Start starts a server on a random loopback port, stopped at the end of the test.
func Start(t testing.TB, session string) *Server {
	t.Helper()
	s := &Server{Session: session, vms: map[int]*vm{}}
	hs := httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(hs.Close)
	s.URL = hs.URL + "/RPC2"
	return s
}

// SetVM stores (or replaces) a VM from its full <VM> document.
func (s *Server) SetVM(doc string) error {
	v, err := parseVM(doc)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vms[v.id] = v
	return nil
}

// SetPool stores every <VM> of a <VM_POOL> document.
func (s *Server) SetPool(doc string) error {
	docs, err := splitPool(doc)
	if err != nil {
		return err
	}
	for _, d := range docs {
		if err := s.SetVM(d); err != nil {
			return err
		}
	}
	return nil
}

// RemoveVM forgets a VM, as `onedb purge-done` does.
func (s *Server) RemoveVM(id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.vms, id)
}

// Inject sets a function that may answer a call instead of the server (nil:
// answer normally). It sees calls with a valid session only.
func (s *Server) Inject(fn func(c Call) *Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inject = fn
}

// Calls returns the calls received so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if r.ContentLength < 0 { // xmlrpc-c requires Content-Length
		http.Error(w, "Content-Length required", http.StatusLengthRequired)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	method, params, err := decodeCall(body)
	if err != nil {
		writeFault(w, -503, "Call XML not a proper XML-RPC call. "+err.Error())
		return
	}
	if len(params) == 0 {
		writeFault(w, -501, "Not enough parameters")
		return
	}
	session, ok := params[0].(string)
	if !ok {
		writeFault(w, -501, "Type mismatch: parameter 0 is not a string")
		return
	}
	c := Call{Method: method, Params: params[1:]}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	inject := s.inject
	s.mu.Unlock()
	if session != s.Session {
		writeResult(w, false, "["+method+"] User couldn't be authenticated, aborting call.", 0x100)
		return
	}
	if inject != nil {
		if rep := inject(c); rep != nil {
			writeReply(w, rep)
			return
		}
	}
	switch method {
	case "one.vm.info":
		s.vmInfo(w, c.Params)
	case "one.vmpool.info", "one.vmpool.infoextended":
		s.vmPool(w, method, c.Params)
	default:
		writeFault(w, -506, "Unknown method name "+method)
	}
}

func writeReply(w http.ResponseWriter, r *Reply) {
	switch {
	case r.HTTPCode != 0:
		http.Error(w, http.StatusText(r.HTTPCode), r.HTTPCode)
	case r.FaultCode != 0:
		writeFault(w, r.FaultCode, r.Message)
	case r.ErrorCode != 0:
		writeResult(w, false, r.Message, r.ErrorCode)
	default:
		writeResult(w, true, r.Body, 0)
	}
}

func (s *Server) vmInfo(w http.ResponseWriter, p []any) {
	if err := types(p, 1, 2, "int", "bool"); err != "" {
		writeFault(w, -501, err)
		return
	}
	id := p[0].(int)
	s.mu.Lock()
	v := s.vms[id]
	s.mu.Unlock()
	if id == -1 {
		writeResult(w, false, "[one.vm.info] Error getting virtual machine Pool.", 0x400)
		return
	}
	if v == nil {
		writeResult(w, false, fmt.Sprintf("[one.vm.info] Error getting virtual machine [%d].", id), 0x400)
		return
	}
	writeResult(w, true, v.full, 0)
}

func (s *Server) vmPool(w http.ResponseWriter, method string, p []any) {
	if err := types(p, 4, 5, "int", "int", "int", "int", "string"); err != "" {
		writeFault(w, -501, err)
		return
	}
	filter, start, end, state := p[0].(int), p[1].(int), p[2].(int), p[3].(int)
	switch {
	case len(p) == 5 && p[4].(string) != "":
		writeResult(w, false, "["+method+"] JSON query search is not supported by the SQL backend", 0x2000)
		return
	case state < -2 || state > 11:
		writeResult(w, false, "["+method+"] Incorrect filter_flag, state", 0x1000)
		return
	case filter < -4:
		writeResult(w, false, "["+method+"] Incorrect filter_flag", 0x1000)
		return
	}
	s.mu.Lock()
	var sel []*vm
	for _, v := range s.vms {
		if owned(v, filter) && inState(v, state) && (start == -1 || end < -1 || v.id >= start && (end == -1 || v.id <= end)) {
			sel = append(sel, v)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(sel, func(a, b *vm) int { return a.id - b.id })
	if start != -1 && end < -1 { // ORDER BY oid LIMIT start, -end
		off := min(max(start, 0), len(sel))
		sel = sel[off:min(off-end, len(sel))]
	}
	var b strings.Builder
	n := 0
	for _, v := range sel {
		n += len(v.pool)
	}
	b.Grow(n + 32)
	b.WriteString("<VM_POOL>")
	for _, v := range sel {
		b.WriteString(v.pool)
	}
	b.WriteString("</VM_POOL>")
	writeResult(w, true, b.String(), 0)
}

// owned applies the filter flag for the session's user, oneadmin (uid 0, gid 0).
func owned(v *vm, filter int) bool {
	switch filter {
	case -2:
		return true
	case -1:
		return v.uid == 0 || v.gid == 0
	case -3:
		return v.uid == 0
	case -4:
		return v.gid == 0
	}
	return v.uid == filter
}

func inState(v *vm, state int) bool {
	switch state {
	case -2:
		return true
	case -1:
		return v.state != 6 // DONE
	}
	return v.state == state
}

// types checks the parameters' count and XML-RPC types as xmlrpc-c does.
func types(p []any, minN, maxN int, want ...string) string {
	if len(p) < minN || len(p) > maxN {
		return fmt.Sprintf("Wrong number of parameters: %d, want %d to %d", len(p), minN, maxN)
	}
	for i, v := range p {
		got := "string"
		switch v.(type) {
		case int:
			got = "int"
		case bool:
			got = "bool"
		case int64:
			got = "i8"
		}
		if got != want[i] {
			return fmt.Sprintf("Type mismatch: parameter %d is %s, want %s", i+1, got, want[i])
		}
	}
	return ""
}

// writeResult writes oned's answer array, as xmlrpc-c formats it.
func writeResult(w http.ResponseWriter, ok bool, body string, code int) {
	var b strings.Builder
	b.Grow(len(body) + len(body)/4 + 512)
	b.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<methodResponse>\r\n<params>\r\n<param><value><array><data>\r\n")
	fmt.Fprintf(&b, "<value><boolean>%d</boolean></value>\r\n", map[bool]int{false: 0, true: 1}[ok])
	b.WriteString("<value><string>")
	_ = xml.EscapeText(&b, []byte(body))
	b.WriteString("</string></value>\r\n")
	fmt.Fprintf(&b, "<value><i4>%d</i4></value>\r\n", code)
	if !ok {
		b.WriteString("<value><i4>0</i4></value>\r\n<value><i8>0</i8></value>\r\n")
	}
	b.WriteString("</data></array></value></param>\r\n</params>\r\n</methodResponse>\r\n")
	write(w, b.String())
}

func writeFault(w http.ResponseWriter, code int, msg string) {
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<methodResponse>\r\n<fault>\r\n<value><struct>\r\n")
	fmt.Fprintf(&b, "<member><name>faultCode</name>\r\n<value><i4>%d</i4></value></member>\r\n", code)
	b.WriteString("<member><name>faultString</name>\r\n<value><string>")
	_ = xml.EscapeText(&b, []byte(msg))
	b.WriteString("</string></value></member>\r\n</struct></value>\r\n</fault>\r\n</methodResponse>\r\n")
	write(w, b.String())
}

func write(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(s)))
	_, _ = io.WriteString(w, s)
}

// StartTLS is Start on https; caFile is the PEM of the server's certificate,
// for Options.CAFile.
func StartTLS(t testing.TB, session string) (s *Server, caFile string) {
	t.Helper()
	s = &Server{Session: session, vms: map[int]*vm{}}
	hs := httptest.NewTLSServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(hs.Close)
	s.URL = hs.URL + "/RPC2"
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	block := &pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw}
	if err := os.WriteFile(caFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return s, caFile
}
