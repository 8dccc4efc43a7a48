package api_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/opennebula"
	"github.com/vmglue/vmglue/hooks/opennebula/api"
	"github.com/vmglue/vmglue/hooks/opennebula/api/apitest"
)

const (
	cloud    = "one"
	password = "s3cr3t-pass"
	session  = "oneadmin:" + password
)

// authFile writes an auth file and returns its path.
func authFile(t *testing.T, line string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "one_auth")
	if err := os.WriteFile(p, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newClient(t *testing.T, o api.Options) *api.Client {
	t.Helper()
	if o.AuthFile == "" {
		o.AuthFile = authFile(t, session)
	}
	c, err := api.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// loadCorpus gives the server every real VM document of the corpus and
// returns the full documents by VM id.
func loadCorpus(t *testing.T, s *apitest.Server) map[string]eventbus.VM {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(apitest.CorpusDir(t), "*.xml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus documents: %v", err)
	}
	full := map[string]eventbus.VM{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc := string(b)
		if strings.Contains(doc[:min(len(doc), 128)], "<VM_POOL") {
			if err := s.SetPool(doc); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			vms, err := opennebula.ParsePool(b, cloud)
			if err != nil {
				t.Fatal(err)
			}
			for _, vm := range vms {
				full[vm.ID] = vm
			}
			continue
		}
		if err := s.SetVM(doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		vm, err := opennebula.ParseVM(b, cloud)
		if err != nil {
			t.Fatal(err)
		}
		full[vm.ID] = vm
	}
	return full
}

// TestListVMsCorpus pages through the corpus's real VMs: every VM but the
// DONE one comes back, mapped exactly as the hook maps the full document
// (the pool body holds only the last HISTORY record), with the documented
// pagination arguments.
func TestListVMsCorpus(t *testing.T) {
	s := apitest.Start(t, session)
	full := loadCorpus(t, s)
	c := newClient(t, api.Options{Endpoint: s.URL, PageSize: 2})
	vms, err := c.ListVMs(context.Background(), cloud, api.StateAnyButDone)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, vm := range vms {
		ids = append(ids, vm.ID)
		want := full[vm.ID]
		a, _ := eventbus.NewEvent(vm)
		b, _ := eventbus.NewEvent(want)
		if a.ID != b.ID {
			t.Errorf("VM %s: pool snapshot differs from the full document's:\n pool %+v\n full %+v", vm.ID, vm, want)
		}
	}
	// 454 is DONE: not listed with state filter -1.
	if want := []string{"0", "1", "2", "595", "621", "800"}; !slices.Equal(ids, want) {
		t.Fatalf("listed %v, want %v", ids, want)
	}
	// The pool holds only the last HISTORY of each VM (595 has 13, 621 has 6).
	doc, err := c.VMPoolPage(context.Background(), 0, 100, api.StateAnyButDone)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(doc, "<HISTORY>"); n != 5 {
		t.Errorf("pool body has %d HISTORY records, want 5 (one per VM that has any)", n)
	}
	var pages [][]any
	for _, call := range s.Calls()[:4] {
		if call.Method != "one.vmpool.infoextended" {
			t.Fatalf("unexpected call %s", call.Method)
		}
		pages = append(pages, call.Params)
	}
	// Two pages at a time: in any order.
	slices.SortFunc(pages, func(a, b []any) int { return a[1].(int) - b[1].(int) })
	want := [][]any{{-2, 0, -2, -1, ""}, {-2, 2, -2, -1, ""}, {-2, 4, -2, -1, ""}, {-2, 6, -2, -1, ""}}
	if !slices.EqualFunc(pages, want, slices.Equal) {
		t.Fatalf("pool calls %v, want %v", pages, want)
	}
}

func TestVM(t *testing.T) {
	s := apitest.Start(t, session)
	loadCorpus(t, s)
	c := newClient(t, api.Options{Endpoint: s.URL})
	ctx := context.Background()
	tests := []struct {
		name, id  string
		found     bool
		kind, err string
	}{
		{"live VM", "621", true, eventbus.KindStopped, ""},
		{"DONE VM oned still has", "454", true, eventbus.KindDeleted, ""},
		{"purged VM", "999", false, "", ""},
		{"not an id", "abc", false, "", "not an OpenNebula VM id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vm, found, err := c.VM(ctx, cloud, tt.id)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || found != tt.found || vm.Kind != tt.kind {
				t.Fatalf("VM(%s) = kind %q found %v err %v, want %q %v", tt.id, vm.Kind, found, err, tt.kind, tt.found)
			}
		})
	}
}

// TestErrors: each failure oned (or the way to it) can give is one clear
// error, and none holds the password.
func TestErrors(t *testing.T) {
	tests := []struct {
		name    string
		session string // the client's credentials
		reply   *apitest.Reply
		is      error
		want    string
	}{
		{"authentication", "oneadmin:wrong-" + password, nil, api.ErrAuthentication,
			`one.vmpool.infoextended: authentication failed for user "oneadmin" (credentials from auth_file `},
		{"authorization", session, &apitest.Reply{ErrorCode: api.CodeAuthorization, Message: "[one.vmpool.infoextended] User [3] : Not authorized to perform USE VM."},
			api.ErrAuthorization, "Not authorized to perform USE VM. (error 0x200 AUTHORIZATION)"},
		{"fault", session, &apitest.Reply{FaultCode: -501, Message: "Type mismatch"}, api.ErrFault, "xml-rpc fault -501: Type mismatch"},
		{"http error", session, &apitest.Reply{HTTPCode: 502}, api.ErrProtocol, "answered http 502 Bad Gateway"},
		{"echoed secret", session, &apitest.Reply{ErrorCode: api.CodeInternal, Message: "bad session " + session}, nil, "bad session oneadmin:***"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := apitest.Start(t, session)
			s.Inject(func(apitest.Call) *apitest.Reply { return tt.reply })
			c := newClient(t, api.Options{Endpoint: s.URL, AuthFile: authFile(t, tt.session)})
			_, err := c.ListVMs(context.Background(), cloud, api.StateAnyButDone)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error holds the password: %q", err)
			}
		})
	}
}

func TestIgnoredPagination(t *testing.T) {
	s := apitest.Start(t, session)
	loadCorpus(t, s)
	pool := ""
	s.Inject(func(c apitest.Call) *apitest.Reply {
		if pool == "" {
			return nil
		}
		return &apitest.Reply{Body: pool}
	})
	c := newClient(t, api.Options{Endpoint: s.URL})
	doc, err := c.VMPoolPage(context.Background(), -1, 1, api.StateAny) // the whole pool
	if err != nil {
		t.Fatal(err)
	}
	pool = doc
	c = newClient(t, api.Options{Endpoint: s.URL, PageSize: 2})
	_, err = c.ListVMs(context.Background(), cloud, api.StateAnyButDone)
	if !errors.Is(err, api.ErrProtocol) || !strings.Contains(err.Error(), "ignores pagination") {
		t.Fatalf("err %v, want the server ignoring pagination", err)
	}
}

func TestTimeout(t *testing.T) {
	s := apitest.Start(t, session)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s.Inject(func(apitest.Call) *apitest.Reply { <-release; return nil })
	c := newClient(t, api.Options{Endpoint: s.URL, Timeout: 200 * time.Millisecond})
	_, err := c.VMInfo(context.Background(), 1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want a deadline", err)
	}
}

func TestTLS(t *testing.T) {
	s, ca := apitest.StartTLS(t, session)
	loadCorpus(t, s)
	if _, err := newClient(t, api.Options{Endpoint: s.URL}).VMInfo(context.Background(), 621); err == nil {
		t.Fatal("an unknown CA was accepted")
	}
	if _, err := newClient(t, api.Options{Endpoint: s.URL, CAFile: ca}).VMInfo(context.Background(), 621); err != nil {
		t.Fatal(err)
	}
}

// TestCredentials: endpoint and credentials are found as OpenNebula's CLI
// finds them, and a bad auth file never shows its content.
func TestCredentials(t *testing.T) {
	s := apitest.Start(t, session)
	loadCorpus(t, s)
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".one"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".one", "one_auth"), []byte(session+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	envFile := authFile(t, session)
	tests := []struct {
		name, home, oneAuth, authFile string
		want                          string // error substring, "" for success
	}{
		{"~/.one/one_auth", home, "", "", ""},
		{"ONE_AUTH", t.TempDir(), envFile, "", ""},
		{"auth_file over ONE_AUTH", t.TempDir(), "/nonexistent", envFile, ""},
		{"missing ONE_AUTH file", home, "/nonexistent/one_auth", "", "from ONE_AUTH=/nonexistent/one_auth: no such file"},
		{"no colon", home, "", authFile(t, password), "first line is not user:password"},
		{"empty password", home, "", authFile(t, "oneadmin:"), "first line is not user:password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HOME", tt.home)
			t.Setenv("ONE_AUTH", tt.oneAuth)
			t.Setenv("ONE_XMLRPC", s.URL)
			c, err := api.New(api.Options{AuthFile: tt.authFile})
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), password) {
					t.Fatalf("err %v, want %q (and no password)", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Endpoint() != s.URL || c.User() != "oneadmin" {
				t.Fatalf("endpoint %s user %s", c.Endpoint(), c.User())
			}
			if _, err := c.VMInfo(context.Background(), 621); err != nil {
				t.Fatal(err)
			}
		})
	}
}
