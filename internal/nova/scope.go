package nova

import (
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"

	"github.com/vmglue/vmglue/eventbus"
)

// AdminRole is the Keystone role Nova's default policy asks of a token
// that lists every project's servers (servers:detail:get_all_tenants).
const AdminRole = "admin"

// scope is what the credentials may see of the cloud: every project, or
// one.
type scope struct {
	all     bool
	project string // the token's project, when not all
}

// tokenScope reads the scope of the provider's token: every project for a
// token with the admin role or without a project (system or domain scope:
// Nova's policy decides, and an error of the listing says so); else the
// token's project alone. A token vmglue cannot read (Keystone v2) is taken
// as every project, as before scopes were read.
func tokenScope(pc *gophercloud.ProviderClient) scope {
	res, ok := pc.GetAuthResult().(interface {
		ExtractProject() (*tokens.Project, error)
		ExtractRoles() ([]tokens.Role, error)
	})
	if !ok {
		return scope{all: true}
	}
	p, err := res.ExtractProject()
	if err != nil || p == nil || p.ID == "" {
		return scope{all: true}
	}
	roles, err := res.ExtractRoles()
	if err != nil {
		return scope{project: p.ID}
	}
	for _, r := range roles {
		if strings.EqualFold(r.Name, AdminRole) {
			return scope{all: true}
		}
	}
	return scope{project: p.ID}
}

// Covers says whether the client's credentials see the VM: every VM for
// an admin's token, else the VMs of the token's project. Before the first
// List or Get it covers nothing.
func (c *Client) Covers(vm *eventbus.VM) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client == nil {
		return false
	}
	return c.scope.all || vm.Project == c.scope.project
}
