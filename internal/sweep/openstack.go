package sweep

import (
	"context"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/nova"
)

// OpenStackCloud is one OpenStack cloud to sweep (Nova: every project with
// an admin's credentials, else the credentials' project; see Scoped).
//
//	openstack:
//	  - cloud: os1               # vmglue's name of the cloud (the Nova bridge's)
//	    os_cloud: prod           # clouds.yaml entry; default $OS_CLOUD, else the OS_* environment (openrc)
//	    clouds_file: ""          # default: $OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack/, /etc/openstack/
//	    region: ""               # default: the entry's region_name or $OS_REGION_NAME
//	    timeout: 60s             # per request
//	    page_size: 500           # servers per request
//	    name: display_name       # or hostname: the VM's name, as bridge.openstack.name (default: the bridge's of the same cloud)
type OpenStackCloud struct {
	Cloud      string        `yaml:"cloud"`
	OSCloud    string        `yaml:"os_cloud"`
	CloudsFile string        `yaml:"clouds_file"`
	Region     string        `yaml:"region"`
	Timeout    time.Duration `yaml:"timeout"`
	PageSize   int           `yaml:"page_size"`
	// Name is the bridge's option: what becomes the VM's name
	// (display_name or hostname). The configuration defaults it to
	// bridge.openstack.name when that bridges the same cloud, else
	// display_name: the sweep and the bridge must name a server alike.
	Name string `yaml:"name"`
}

// openStack is a Cloud on Nova's API.
type openStack struct {
	name string
	c    *nova.Client
}

func newOpenStack(o *OpenStackCloud, protect func(*eventbus.VM)) *openStack {
	return &openStack{name: o.Cloud, c: nova.New(nova.Options{Cloud: o.Cloud, OSCloud: o.OSCloud, CloudsFile: o.CloudsFile,
		Region: o.Region, Timeout: o.Timeout, PageSize: o.PageSize, NameFrom: o.Name, Protect: protect})}
}

func (o *openStack) Name() string { return o.name }

func (o *openStack) List(ctx context.Context) ([]eventbus.VM, error) { return o.c.List(ctx) }

// Covers implements Scoped: a project member's credentials speak for its
// project's servers only.
func (o *openStack) Covers(vm *eventbus.VM) bool { return o.c.Covers(vm) }

// Comparable implements Projector (nova.Comparable).
func (o *openStack) Comparable(vm eventbus.VM) eventbus.VM { return nova.Comparable(vm) }

func (o *openStack) Lookup(ctx context.Context, id string) (eventbus.VM, bool, error) {
	return o.c.Get(ctx, id)
}
