package bridge

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/config"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"

	"github.com/vmglue/vmglue/eventbus"
	novanotify "github.com/vmglue/vmglue/hooks/openstack"
)

// NovaLookup is the Lookup over Nova's API (gophercloud).
type NovaLookup struct {
	compute *gophercloud.ServiceClient
}

// NewNovaLookup authenticates as the OpenStack CLI would: the clouds.yaml
// entry c.Cloud (or OS_CLOUD), else the OS_* variables. The token is
// renewed when it expires (AllowReauth).
func NewNovaLookup(ctx context.Context, c LookupConfig) (*NovaLookup, error) {
	var (
		ao     gophercloud.AuthOptions
		eo     gophercloud.EndpointOpts
		tlsCfg *tls.Config // nil: the default transport
		err    error
		source = "OS_* environment"
	)
	if c.Cloud != "" || os.Getenv("OS_CLOUD") != "" {
		var opts []clouds.ParseOption
		if c.Cloud != "" {
			opts = append(opts, clouds.WithCloudName(c.Cloud))
		}
		ao, eo, tlsCfg, err = clouds.Parse(opts...)
		if err != nil {
			return nil, fmt.Errorf("bridge.openstack.lookup: clouds.yaml: %w", err)
		}
		source = "clouds.yaml"
	} else {
		ao, err = openstack.AuthOptionsFromEnv()
		if err != nil {
			return nil, fmt.Errorf("bridge.openstack.lookup: %w", err)
		}
		eo.Region = os.Getenv("OS_REGION_NAME")
	}
	if c.Region != "" {
		eo.Region = c.Region
	}
	ao.AllowReauth = true
	pc, err := config.NewProviderClient(ctx, ao, config.WithTLSConfig(tlsCfg))
	if err != nil {
		return nil, fmt.Errorf("bridge.openstack.lookup: authenticate (%s): %w", source, err)
	}
	compute, err := openstack.NewComputeV2(pc, eo)
	if err != nil {
		return nil, fmt.Errorf("bridge.openstack.lookup: compute endpoint: %w", err)
	}
	compute.Microversion = "2.47" // flavor details, OS-EXT-SRV-ATTR:hostname
	return &NovaLookup{compute: compute}, nil
}

// Complete implements Lookup: the server's fixed addresses become the VM's
// NICs (APINICs of hooks/openstack: as the bridge maps notifications), its host and
// metadata fill what is empty. A server that is gone changes nothing.
func (l *NovaLookup) Complete(ctx context.Context, vm *eventbus.VM) error {
	s, err := servers.Get(ctx, l.compute, vm.ID).Extract()
	if gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get server %s: %w", vm.ID, err)
	}
	raw, err := json.Marshal(s.Addresses)
	if err != nil {
		return fmt.Errorf("server %s addresses: %w", vm.ID, err)
	}
	var addrs map[string][]novanotify.APIAddress
	if err := json.Unmarshal(raw, &addrs); err != nil {
		return fmt.Errorf("server %s addresses: %w", vm.ID, err)
	}
	nics := novanotify.APINICs(addrs)
	if len(nics) > 0 {
		vm.NICs = nics
	}
	if vm.Host == "" {
		vm.Host = s.Host
	}
	if len(vm.Attributes) == 0 && len(s.Metadata) > 0 {
		vm.Attributes = s.Metadata // the caller protects the secret ones
	}
	return nil
}
