// Package novatest is an OpenStack Identity v3 + Compute v2.1 fixture for
// tests, built from the documented API answers (Keystone's "Password
// authentication with scoped authorization" and Nova's "List Servers
// Detailed" / "Show Server Details" in the api-ref, microversion 2.3; the
// pagination links Nova writes when a page is full). A real OpenStack is
// not available to every test run (it is a separate, heavy stack), so this
// fixture answers the calls vmglue makes, and checks what it is sent:
//
//   - POST /identity/v3/auth/tokens with a password: 201, X-Subject-Token,
//     a catalog with the compute endpoint of RegionOne; a wrong password is
//     401;
//   - GET /compute/v2.1/servers/detail?all_tenants=true&limit=N[&marker=ID]
//     in id order, with a "next" link when a page is full; a request
//     without all_tenants lists nothing of the other projects (here:
//     nothing);
//   - GET /compute/v2.1/servers/{id}: the server, or 404 itemNotFound;
//   - an expired token (Expire) is 401, as Keystone's middleware answers.
package novatest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Fixture is a running Keystone + Nova.
type Fixture struct {
	URL               string // base URL
	IdentityURL       string // the auth_url: URL + "/identity/v3"
	User, Password    string
	Project, Domain   string
	mu                sync.Mutex
	servers           map[string]map[string]any
	tokens            map[string]bool
	issued            int
	Requests          []string // "GET /compute/v2.1/servers/detail?..." in order
	microversionsSeen []string
}

// Start starts the fixture, stopped when the test ends.
func Start(t testing.TB) *Fixture {
	t.Helper()
	f := &Fixture{User: "vmglue", Password: "nova-fixture-secret", Project: "admin", Domain: "Default",
		servers: map[string]map[string]any{}, tokens: map[string]bool{}}
	hs := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(hs.Close)
	f.URL = hs.URL
	f.IdentityURL = hs.URL + "/identity/v3"
	return f
}

// Server is a server document as Nova's "List Servers Detailed" shows it.
func Server(id, name, vmState, project, ip, mac string) map[string]any {
	return map[string]any{
		"id": id, "name": name, "status": strings.ToUpper(map[string]string{"active": "ACTIVE", "stopped": "SHUTOFF"}[vmState]),
		"tenant_id": project, "user_id": "9349aff8be7545ac9d2f1d00999a23cd",
		"created": "2026-11-20T08:00:00Z", "updated": "2026-11-20T08:01:00Z",
		"hostId": "2091634baaccdc4c5a1d57069c833e402921df696b7f970791b12ec6", "progress": 0,
		"addresses": map[string]any{"private": []any{
			map[string]any{"addr": ip, "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": mac},
			map[string]any{"addr": "172.24.4.10", "version": 4, "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": mac},
		}},
		"metadata":                            map[string]any{"LB_BACKENDS": "web:8080"},
		"OS-EXT-SRV-ATTR:host":                "compute1",
		"OS-EXT-SRV-ATTR:hypervisor_hostname": "compute1.example",
		"OS-EXT-SRV-ATTR:instance_name":       "instance-00000001",
		"OS-EXT-SRV-ATTR:hostname":            name,
		"OS-EXT-STS:vm_state":                 vmState,
		"OS-EXT-STS:task_state":               nil,
		"OS-EXT-STS:power_state":              1,
		"OS-EXT-AZ:availability_zone":         "nova",
		"key_name":                            nil,
		"flavor":                              map[string]any{"id": "1", "links": []any{}},
		"image":                               map[string]any{"id": "70a599e0-31e7-49b7-b260-868f441e862b", "links": []any{}},
		"links":                               []any{},
		"security_groups":                     []any{map[string]any{"name": "default"}},
	}
}

// SetServer stores (or replaces) a server document.
func (f *Fixture) SetServer(s map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.servers[s["id"].(string)] = s
}

// RemoveServer forgets a server (deleted and archived).
func (f *Fixture) RemoveServer(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.servers, id)
}

// Expire makes every token issued so far invalid.
func (f *Fixture) Expire() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = map[string]bool{}
}

// TokensIssued counts the successful authentications.
func (f *Fixture) TokensIssued() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issued
}

// Log returns the requests received, and the microversions they asked for.
func (f *Fixture) Log() (requests, microversions []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.Requests), slices.Clone(f.microversionsSeen)
}

func (f *Fixture) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.Requests = append(f.Requests, r.Method+" "+r.URL.RequestURI())
	f.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/identity/v3/auth/tokens":
		f.token(w, r)
		return
	case strings.HasPrefix(r.URL.Path, "/compute/v2.1/"):
	default:
		reply(w, http.StatusNotFound, map[string]any{"error": map[string]any{"code": 404, "message": "not found"}})
		return
	}
	f.mu.Lock()
	ok := f.tokens[r.Header.Get("X-Auth-Token")]
	f.microversionsSeen = append(f.microversionsSeen, r.Header.Get("X-OpenStack-Nova-API-Version"))
	f.mu.Unlock()
	if !ok {
		reply(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"code": 401, "title": "Unauthorized",
			"message": "The request you have made requires authentication."}})
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/compute/v2.1/servers")
	switch {
	case path == "/detail":
		f.list(w, r)
	case strings.HasPrefix(path, "/") && !strings.Contains(path[1:], "/"):
		f.mu.Lock()
		s := f.servers[path[1:]]
		f.mu.Unlock()
		if s == nil {
			reply(w, http.StatusNotFound, map[string]any{"itemNotFound": map[string]any{"code": 404,
				"message": fmt.Sprintf("Instance %s could not be found.", path[1:])}})
			return
		}
		reply(w, http.StatusOK, map[string]any{"server": s})
	default:
		reply(w, http.StatusNotFound, map[string]any{"itemNotFound": map[string]any{"code": 404, "message": "not found"}})
	}
}

func (f *Fixture) token(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Auth struct {
			Identity struct {
				Password struct {
					User struct {
						Name     string `json:"name"`
						Password string `json:"password"`
					} `json:"user"`
				} `json:"password"`
			} `json:"identity"`
		} `json:"auth"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		reply(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"code": 400, "message": err.Error()}})
		return
	}
	u := req.Auth.Identity.Password.User
	if u.Name != f.User || u.Password != f.Password {
		reply(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"code": 401, "title": "Unauthorized",
			"message": "The request you have made requires authentication."}})
		return
	}
	f.mu.Lock()
	f.issued++
	tok := "gAAAAAB-fixture-token-" + strconv.Itoa(f.issued)
	f.tokens[tok] = true
	f.mu.Unlock()
	w.Header().Set("X-Subject-Token", tok)
	reply(w, http.StatusCreated, map[string]any{"token": map[string]any{
		"methods": []string{"password"}, "expires_at": "2099-01-01T00:00:00.000000Z", "issued_at": "2026-11-20T08:00:00.000000Z",
		"user":    map[string]any{"id": "9349aff8be7545ac9d2f1d00999a23cd", "name": f.User, "domain": map[string]any{"id": "default", "name": f.Domain}},
		"project": map[string]any{"id": "8b3e1b1a1b2f4bb7a0c5a3c8e0f0d4b1", "name": f.Project, "domain": map[string]any{"id": "default", "name": f.Domain}},
		"roles":   []any{map[string]any{"id": "1", "name": "admin"}},
		"catalog": []any{map[string]any{"type": "compute", "name": "nova", "id": "c1", "endpoints": []any{
			map[string]any{"id": "e1", "interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": f.URL + "/compute/v2.1"},
		}}},
	}})
}

func (f *Fixture) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 {
		limit = 1000 // Nova's osapi_max_limit
	}
	f.mu.Lock()
	var ids []string
	if q.Get("all_tenants") == "true" || q.Get("all_tenants") == "True" || q.Get("all_tenants") == "1" {
		for id := range f.servers {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if m := q.Get("marker"); m != "" {
		i, found := slices.BinarySearch(ids, m)
		if !found {
			f.mu.Unlock()
			reply(w, http.StatusBadRequest, map[string]any{"badRequest": map[string]any{"code": 400, "message": "marker [" + m + "] not found"}})
			return
		}
		ids = ids[i+1:]
	}
	page := []any{}
	for _, id := range ids[:min(limit, len(ids))] {
		page = append(page, f.servers[id])
	}
	f.mu.Unlock()
	body := map[string]any{"servers": page}
	if len(page) == limit {
		q.Set("marker", page[len(page)-1].(map[string]any)["id"].(string))
		body["servers_links"] = []any{map[string]any{"rel": "next", "href": f.URL + "/compute/v2.1/servers/detail?" + q.Encode()}}
	}
	reply(w, http.StatusOK, body)
}

func reply(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}
