package sweep_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/projects"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/roles"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/users"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/sweep"
	"github.com/vmglue/vmglue/internal/testenv"
)

// osCloud is vmglue's name of the test OpenStack.
const osCloud = "os1"

// box is the test OpenStack (testenv.OpenStack) with a clouds.yaml as an
// operator writes it: the entry "lab" holds the admin's credentials.
type box struct {
	stack   *testenv.OpenStackStack
	compute *gophercloud.ServiceClient // the admin's
	clouds  string                     // clouds.yaml
	entries map[string]string          // clouds.yaml entries by name
}

func newBox(t *testing.T) *box {
	t.Helper()
	stack := testenv.OpenStack(t)
	b := &box{stack: stack, compute: stack.Compute(t), clouds: filepath.Join(t.TempDir(), "clouds.yaml"), entries: map[string]string{}}
	b.addEntry(t, "lab", stack.Env["OS_USERNAME"], stack.Env["OS_PASSWORD"], stack.Env["OS_PROJECT_NAME"])
	return b
}

// addEntry adds a password entry to clouds.yaml.
func (b *box) addEntry(t *testing.T, name, user, password, project string) {
	t.Helper()
	b.entries[name] = fmt.Sprintf("  %s:\n    auth:\n      auth_url: %s\n      username: %s\n      password: %s\n      project_name: %s\n"+
		"      user_domain_name: Default\n      project_domain_name: Default\n    region_name: %s\n",
		name, b.stack.Env["OS_AUTH_URL"], user, password, project, b.stack.Env["OS_REGION_NAME"])
	text := "clouds:\n"
	for _, e := range b.entries {
		text += e
	}
	if err := os.WriteFile(b.clouds, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// sweeper builds the sweeper of osCloud from a config naming the clouds.yaml
// entry, as `vmglue sweep` does; name is the entry's name key.
func (b *box) sweeper(t *testing.T, e *env, entry string, pageSize int, name string) *sweep.Sweeper {
	t.Helper()
	cfg := &sweep.Config{OpenStack: []sweep.OpenStackCloud{{Cloud: osCloud, OSCloud: entry, CloudsFile: b.clouds, PageSize: pageSize, Name: name}}}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sweepers, closeAll, err := sweep.Build(context.Background(), cfg, osCloud, e.js, sweep.JetStreamPublisher{JS: e.js}, nil, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeAll)
	return sweepers[0]
}

// tenant creates a project with a member user (no admin role), adds its
// clouds.yaml entry and returns the user's compute client; project and
// user are removed when the test ends.
func (b *box) tenant(t *testing.T, entry string) *gophercloud.ServiceClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := openstack.NewIdentityV3(b.compute.ProviderClient, gophercloud.EndpointOpts{Region: b.stack.Env["OS_REGION_NAME"]})
	if err != nil {
		t.Fatal(err)
	}
	name := "sweep-" + testenv.RandomName(t)
	p, err := projects.Create(ctx, id, projects.CreateOpts{Name: name, DomainID: "default"}).Extract()
	if err != nil {
		t.Fatalf("create project: %v", err)
	}
	t.Cleanup(func() { _ = projects.Delete(context.Background(), id, p.ID).ExtractErr() })
	password := testenv.RandomName(t) + testenv.RandomName(t)
	u, err := users.Create(ctx, id, users.CreateOpts{Name: name, Password: password, DomainID: "default", DefaultProjectID: p.ID}).Extract()
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	t.Cleanup(func() { _ = users.Delete(context.Background(), id, u.ID).ExtractErr() })
	pages, err := roles.List(id, roles.ListOpts{Name: "member"}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	list, err := roles.ExtractRoles(pages)
	if err != nil || len(list) != 1 {
		t.Fatalf("role member: %v %v", list, err)
	}
	if err := roles.Assign(ctx, id, list[0].ID, roles.AssignOpts{UserID: u.ID, ProjectID: p.ID}).ExtractErr(); err != nil {
		t.Fatalf("assign role member: %v", err)
	}
	b.addEntry(t, entry, name, password, name)
	pc, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{IdentityEndpoint: b.stack.Env["OS_AUTH_URL"],
		Username: name, Password: password, DomainName: "Default", TenantName: name})
	if err != nil {
		t.Fatalf("authenticate as the project member: %v", err)
	}
	c, err := openstack.NewComputeV2(pc, gophercloud.EndpointOpts{Region: b.stack.Env["OS_REGION_NAME"]})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// boot creates n servers named prefix-<i> and waits until they are ACTIVE.
func (b *box) boot(t *testing.T, prefix string, n int, metadata map[string]string) []*servers.Server {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = b.stack.Create(t, b.compute, fmt.Sprintf("%s-%d", prefix, i), metadata)
	}
	out := make([]*servers.Server, n)
	for i, id := range ids {
		out[i] = b.stack.WaitStatus(t, b.compute, id, "ACTIVE")
	}
	return out
}

// actionsOn returns the sweep's actions on the given VMs.
func actionsOn(r sweep.Result, ids ...string) []sweep.Action {
	var out []sweep.Action
	for _, a := range r.Actions {
		for _, id := range ids {
			if a.VM == id {
				out = append(out, a)
			}
		}
	}
	return out
}

// lastEvent returns the newest stored event of a VM.
func (e *env) lastEvent(id string) *eventbus.Event {
	e.t.Helper()
	evs := e.events()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Data.ID == id {
			return &evs[i]
		}
	}
	e.t.Fatalf("no event of vm %s", id)
	return nil
}

// sameAsNova fails the test unless vm is srv as Nova's API reports it.
func sameAsNova(t *testing.T, vm *eventbus.VM, srv *servers.Server) {
	t.Helper()
	v4, v6, mac := novaAddress(t, srv)
	var problems []string
	check := func(what, got, want string) {
		if got != want {
			problems = append(problems, fmt.Sprintf("%s %q, Nova %q", what, got, want))
		}
	}
	check("name", vm.Name, srv.Name)
	check("project", vm.Project, srv.TenantID)
	check("owner", vm.Owner, srv.UserID)
	check("host", vm.Host, srv.Host)
	check("kind", vm.Kind, eventbus.KindRunning)
	if len(vm.NICs) != 1 {
		problems = append(problems, fmt.Sprintf("NICs %+v, Nova one port", vm.NICs))
	} else {
		check("ip", vm.NICs[0].IP, v4)
		check("ip6", vm.NICs[0].IP6, v6)
		check("mac", vm.NICs[0].MAC, mac)
	}
	for k, v := range srv.Metadata {
		check("metadata "+k, vm.Attributes[k], v)
	}
	if vm.Version.Changed != srv.Updated.UnixNano() {
		problems = append(problems, fmt.Sprintf("version changed %d, Nova updated %s", vm.Version.Changed, srv.Updated))
	}
	if len(problems) > 0 {
		t.Errorf("vm %s: %s", vm.ID, strings.Join(problems, "; "))
	}
}

// novaAddress returns the fixed IPv4, IPv6 and MAC Neutron gave srv.
func novaAddress(t *testing.T, srv *servers.Server) (v4, v6, mac string) {
	t.Helper()
	for _, list := range srv.Addresses {
		addrs, _ := list.([]any)
		for _, a := range addrs {
			m, _ := a.(map[string]any)
			addr, _ := m["addr"].(string)
			mac, _ = m["OS-EXT-IPS-MAC:mac_addr"].(string)
			if strings.Contains(addr, ":") {
				v6 = addr
			} else {
				v4 = addr
			}
		}
	}
	if v4 == "" || v6 == "" || mac == "" {
		t.Fatalf("server %s addresses %v: want an IPv4, an IPv6 and a MAC", srv.ID, srv.Addresses)
	}
	return v4, v6, mac
}
