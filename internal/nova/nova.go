// Package nova lists an OpenStack cloud's servers with gophercloud v2, as
// vmglue snapshots (eventbus.VM), for the sweep.
//
// Credentials are found as the OpenStack CLI finds them: the clouds.yaml
// entry named by Options.OSCloud or $OS_CLOUD (clouds.yaml searched in
// $OS_CLIENT_CONFIG_FILE, ./, ~/.config/openstack/, /etc/openstack/, with
// its secure.yaml), else the OS_* environment of an openrc file
// (OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME, OS_DOMAIN_NAME,
// application credentials, OS_REGION_NAME, OS_CACERT). The token is renewed
// when it expires (AllowReauth). With the admin role the client lists every
// project's servers (all_tenants); without it, the servers of the token's
// project, and Covers says which VMs its answers speak for.
package nova

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/config"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"
	"github.com/gophercloud/gophercloud/v2/pagination"

	"github.com/vmglue/vmglue/eventbus"
)

// Options configure a Client. Zero values take the defaults.
type Options struct {
	// Cloud is vmglue's name of the cloud (subjects, keys).
	Cloud string
	// OSCloud names the clouds.yaml entry (default $OS_CLOUD; with
	// neither, the OS_* environment).
	OSCloud string
	// CloudsFile is the clouds.yaml to read (default: the CLI's search).
	CloudsFile string
	// Region overrides the entry's or $OS_REGION_NAME.
	Region string
	// Timeout of one request (default 60s).
	Timeout time.Duration
	// PageSize is the number of servers per request (default 500).
	PageSize int
	// NameFrom is what becomes the VM's name, as the Nova bridge's option:
	// openstack.NameDisplayName (default) or openstack.NameHostname (the
	// display name when the server has no hostname).
	NameFrom string
	// Protect keeps each VM's secrets (metadata) off the bus, as the Nova
	// bridge does (nil: eventbus.Secrets{}).
	Protect func(*eventbus.VM)
}

// Microversion is the compute API version vmglue asks for: 2.3 adds the
// OS-EXT-SRV-ATTR:hostname of a server.
const Microversion = "2.3"

// Client lists one cloud's servers. It authenticates on first use, and
// again when that failed.
type Client struct {
	o      Options
	mu     sync.Mutex
	client *gophercloud.ServiceClient
	scope  scope // of the token, read when authenticated
}

// New returns a Client; it does not contact the cloud yet.
func New(o Options) *Client {
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.PageSize <= 0 {
		o.PageSize = 500
	}
	return &Client{o: o}
}

// compute returns the authenticated compute client.
func (c *Client) compute(ctx context.Context) (*gophercloud.ServiceClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		return c.client, nil
	}
	ao, eo, tlsCfg, source, err := c.authOptions()
	if err != nil {
		return nil, err
	}
	ao.AllowReauth = true
	pc, err := config.NewProviderClient(ctx, ao, config.WithHTTPClient(http.Client{Timeout: c.o.Timeout}), config.WithTLSConfig(tlsCfg))
	if err != nil {
		return nil, fmt.Errorf("authenticate to openstack %s (credentials from %s): %w", c.o.Cloud, source, err)
	}
	sc, err := openstack.NewComputeV2(pc, eo)
	if err != nil {
		return nil, fmt.Errorf("openstack %s: find the compute endpoint: %w", c.o.Cloud, err)
	}
	sc.Microversion = Microversion
	c.client, c.scope = sc, tokenScope(pc)
	return sc, nil
}

// authOptions reads clouds.yaml or the OS_* environment; source says which
// (never a secret).
func (c *Client) authOptions() (gophercloud.AuthOptions, gophercloud.EndpointOpts, *tls.Config, string, error) {
	name := c.o.OSCloud
	if name == "" {
		name = os.Getenv("OS_CLOUD")
	}
	if name != "" {
		opts := []clouds.ParseOption{clouds.WithCloudName(name)}
		if c.o.Region != "" {
			opts = append(opts, clouds.WithRegion(c.o.Region))
		}
		if c.o.CloudsFile != "" {
			opts = append(opts, clouds.WithLocations(c.o.CloudsFile))
		}
		source := "clouds.yaml entry " + name
		ao, eo, tlsCfg, err := clouds.Parse(opts...)
		if err != nil {
			return ao, eo, nil, source, fmt.Errorf("openstack %s: read %s: %w", c.o.Cloud, source, err)
		}
		return ao, eo, tlsCfg, source, nil
	}
	const source = "the OS_* environment"
	ao, err := envAuthOptions()
	if err != nil {
		return ao, gophercloud.EndpointOpts{}, nil, source, fmt.Errorf("openstack %s: no clouds.yaml entry (set os_cloud or OS_CLOUD) and %s: %w", c.o.Cloud, source, err)
	}
	eo := gophercloud.EndpointOpts{Region: c.o.Region}
	if eo.Region == "" {
		eo.Region = os.Getenv("OS_REGION_NAME")
	}
	var tlsCfg *tls.Config
	if ca := os.Getenv("OS_CACERT"); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return ao, eo, nil, source, fmt.Errorf("openstack %s: OS_CACERT: %w", c.o.Cloud, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return ao, eo, nil, source, fmt.Errorf("openstack %s: OS_CACERT %s: no PEM certificate", c.o.Cloud, ca)
		}
		tlsCfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return ao, eo, tlsCfg, source, nil
}

// List returns every server the credentials see (every project's with the
// admin role), deleted ones left out (also those Nova still lists with
// status DELETED while it removes them), mapped for the cloud.
func (c *Client) List(ctx context.Context) ([]eventbus.VM, error) {
	sc, err := c.compute(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	all := c.scope.all
	c.mu.Unlock()
	var out []eventbus.VM
	pager := servers.List(sc, servers.ListOpts{AllTenants: all, Limit: c.o.PageSize})
	err = pager.EachPage(ctx, func(_ context.Context, page pagination.Page) (bool, error) {
		var list []server
		if err := servers.ExtractServersInto(page, &list); err != nil {
			return false, err
		}
		for i := range list {
			if list[i].VMState == "deleted" {
				// Between its vm_state and its row: a server being
				// deleted shows up once with status DELETED.
				continue
			}
			vm, err := list[i].vm(&c.o)
			if err != nil {
				return false, err
			}
			out = append(out, vm)
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list servers of openstack %s: %w", c.o.Cloud, err)
	}
	return out, nil
}

// Get returns one server; found is false when Nova does not know it (404).
func (c *Client) Get(ctx context.Context, id string) (eventbus.VM, bool, error) {
	sc, err := c.compute(ctx)
	if err != nil {
		return eventbus.VM{}, false, err
	}
	var s server
	err = servers.Get(ctx, sc, id).ExtractInto(&s)
	if gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		return eventbus.VM{}, false, nil
	}
	if err != nil {
		return eventbus.VM{}, false, fmt.Errorf("get server %s of openstack %s: %w", id, c.o.Cloud, err)
	}
	vm, err := s.vm(&c.o)
	return vm, err == nil, err
}

// ErrInvalidServer is wrapped by a server the API answered that vmglue
// cannot name (an id that is not a subject token).
var ErrInvalidServer = errors.New("invalid server")

// envAuthOptions reads an openrc's OS_* variables as the OpenStack CLI
// does: the user's domain (OS_USER_DOMAIN_*, else OS_DOMAIN_*) apart from
// the project's (OS_PROJECT_DOMAIN_*, else the user's), application
// credentials unscoped.
func envAuthOptions() (gophercloud.AuthOptions, error) {
	env := func(keys ...string) string {
		for _, k := range keys {
			if v := os.Getenv(k); v != "" {
				return v
			}
		}
		return ""
	}
	ao := gophercloud.AuthOptions{
		IdentityEndpoint:            env("OS_AUTH_URL"),
		Username:                    env("OS_USERNAME"),
		UserID:                      env("OS_USER_ID", "OS_USERID"),
		Password:                    env("OS_PASSWORD"),
		DomainID:                    env("OS_USER_DOMAIN_ID", "OS_DOMAIN_ID"),
		DomainName:                  env("OS_USER_DOMAIN_NAME", "OS_DOMAIN_NAME"),
		ApplicationCredentialID:     env("OS_APPLICATION_CREDENTIAL_ID"),
		ApplicationCredentialName:   env("OS_APPLICATION_CREDENTIAL_NAME"),
		ApplicationCredentialSecret: env("OS_APPLICATION_CREDENTIAL_SECRET"),
	}
	switch {
	case ao.IdentityEndpoint == "":
		return ao, errors.New("OS_AUTH_URL is not set")
	case ao.ApplicationCredentialSecret != "":
		return ao, nil
	case ao.Username == "" && ao.UserID == "":
		return ao, errors.New("OS_USERNAME (or OS_USER_ID) is not set")
	case ao.Password == "":
		return ao, errors.New("OS_PASSWORD (or OS_APPLICATION_CREDENTIAL_SECRET) is not set")
	}
	project := gophercloud.AuthScope{
		ProjectID:   env("OS_PROJECT_ID", "OS_TENANT_ID"),
		ProjectName: env("OS_PROJECT_NAME", "OS_TENANT_NAME"),
		DomainID:    env("OS_PROJECT_DOMAIN_ID"),
		DomainName:  env("OS_PROJECT_DOMAIN_NAME"),
	}
	if project.DomainID == "" && project.DomainName == "" {
		project.DomainID, project.DomainName = ao.DomainID, ao.DomainName
	}
	if project.ProjectID != "" || project.ProjectName != "" {
		if project.ProjectID != "" {
			project.DomainID, project.DomainName = "", ""
		}
		ao.Scope = &project
	}
	return ao, nil
}
