package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
)

// OpenStackEnv names the directory of an OpenStack stack started by
// scripts/openstack-stack.sh (the Makefile starts one per `make test` run).
const OpenStackEnv = "VMGLUE_TEST_OPENSTACK"

// OpenStackStack is a running minimal OpenStack (Keystone, Placement,
// Glance, Nova with the fake driver, Neutron, RabbitMQ, MariaDB), as
// described by DIR/env of scripts/openstack-stack.sh.
type OpenStackStack struct {
	Dir string
	// AMQPURL is RabbitMQ's URL, where Nova sends its notifications
	// (exchange "nova", both formats).
	AMQPURL string
	// FlavorID, ImageID and NetworkID boot a server with one port holding
	// an IPv4 (192.0.2.0/24) and an IPv6 (2001:db8::/64) address.
	FlavorID, ImageID, NetworkID string
	// ComputeHost is nova-compute's host name.
	ComputeHost string
	Env         map[string]string // all of DIR/env: OS_* of the admin, ports
}

var ostack struct {
	once    sync.Once
	stack   *OpenStackStack
	err     error
	started string
}

// OpenStack returns the test OpenStack. With VMGLUE_TEST_OPENSTACK set it
// waits for the stack in that directory (started by the Makefile);
// otherwise it starts one in a temporary directory, once per test binary
// (about 70 s and 2 GB): call StopOpenStack from TestMain. It fails the
// test when the stack is not usable; it never skips.
func OpenStack(t testing.TB) *OpenStackStack {
	t.Helper()
	ostack.once.Do(func() { ostack.stack, ostack.err = startOpenStack() })
	if ostack.err != nil {
		t.Fatalf("openstack test stack: %v", ostack.err)
	}
	return ostack.stack
}

// StopOpenStack stops the stack OpenStack started itself (not the Makefile's).
func StopOpenStack() {
	if ostack.started == "" {
		return
	}
	stopStack("openstack-stack.sh", ostack.started)
}

func startOpenStack() (*OpenStackStack, error) {
	dir, err := runStack("openstack-stack.sh", OpenStackEnv, &ostack.started)
	if err != nil {
		return nil, err
	}
	env, err := readEnvFile(filepath.Join(dir, "env"), "OS_AUTH_URL", "OS_PASSWORD", "OPENSTACK_AMQP_URL",
		"OPENSTACK_FLAVOR_ID", "OPENSTACK_IMAGE_ID", "OPENSTACK_NETWORK_ID")
	if err != nil {
		return nil, err
	}
	return &OpenStackStack{
		Dir: dir, AMQPURL: env["OPENSTACK_AMQP_URL"], FlavorID: env["OPENSTACK_FLAVOR_ID"],
		ImageID: env["OPENSTACK_IMAGE_ID"], NetworkID: env["OPENSTACK_NETWORK_ID"],
		ComputeHost: env["OPENSTACK_COMPUTE_HOST"], Env: env,
	}, nil
}

// SetOSEnv sets the OS_* variables of the admin for the test, as an
// operator's openrc would (gophercloud's AuthOptionsFromEnv reads them).
func (s *OpenStackStack) SetOSEnv(t *testing.T) {
	t.Helper()
	for k, v := range s.Env {
		if strings.HasPrefix(k, "OS_") {
			t.Setenv(k, v)
		}
	}
	t.Setenv("OS_CLOUD", "")
}

// Compute returns an admin client of Nova's API.
func (s *OpenStackStack) Compute(t testing.TB) *gophercloud.ServiceClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{
		IdentityEndpoint: s.Env["OS_AUTH_URL"], Username: s.Env["OS_USERNAME"], Password: s.Env["OS_PASSWORD"],
		TenantName: s.Env["OS_PROJECT_NAME"], DomainName: "Default", AllowReauth: true,
	})
	if err != nil {
		t.Fatalf("openstack: authenticate: %v", err)
	}
	c, err := openstack.NewComputeV2(pc, gophercloud.EndpointOpts{Region: s.Env["OS_REGION_NAME"]})
	if err != nil {
		t.Fatalf("openstack: compute endpoint: %v", err)
	}
	c.Microversion = "2.47"
	return c
}

// Boot creates a server on the stack's network and waits until it is
// ACTIVE; it is deleted when the test ends, if the test did not.
func (s *OpenStackStack) Boot(t testing.TB, c *gophercloud.ServiceClient, name string, metadata map[string]string) *servers.Server {
	t.Helper()
	return s.WaitStatus(t, c, s.Create(t, c, name, metadata), "ACTIVE")
}

// Create asks Nova for a server on the stack's network and returns its id
// without waiting (WaitStatus waits); it is deleted when the test ends, if
// the test did not.
func (s *OpenStackStack) Create(t testing.TB, c *gophercloud.ServiceClient, name string, metadata map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := servers.Create(ctx, c, servers.CreateOpts{
		Name: name, FlavorRef: s.FlavorID, ImageRef: s.ImageID, Metadata: metadata,
		Networks: []servers.Network{{UUID: s.NetworkID}},
	}, nil).Extract()
	if err != nil {
		t.Fatalf("openstack: create server %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = servers.Delete(ctx, c, srv.ID).ExtractErr()
	})
	return srv.ID
}

// WaitStatus waits until the server has status (ACTIVE, SHUTOFF), or is
// gone for "DELETED"; an ERROR status fails the test.
func (s *OpenStackStack) WaitStatus(t testing.TB, c *gophercloud.ServiceClient, id, status string) *servers.Server {
	t.Helper()
	var last *servers.Server
	slowPoll(t, 3*time.Minute, "server "+id+" "+status, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		srv, err := servers.Get(ctx, c, id).Extract()
		if status == "DELETED" && gophercloud.ResponseCodeIs(err, 404) {
			return true
		}
		if err != nil {
			return false
		}
		if srv.Status == "ERROR" {
			t.Fatalf("server %s went to ERROR: %v", id, srv.Fault)
		}
		last = srv
		return srv.Status == status
	})
	return last
}

// slowPoll is WaitFor at an API's pace: cond every 500 ms.
func slowPoll(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not reached after %s", what, timeout)
		}
		<-tick.C
	}
}

// MainOpenStack runs a test binary's tests (TestMain) and stops the test
// OpenStack if the binary started it itself (not the Makefile's).
func MainOpenStack(m *testing.M) {
	code := m.Run()
	StopOpenStack()
	os.Exit(code)
}

// RandomName is 8 random hex digits, for the names of servers, queues and
// projects a test adds to the shared stack.
func RandomName(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
