package sweep_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/internal/nova/novatest"
	"github.com/vmglue/vmglue/internal/sweep"
)

// TestOpenStack sweeps the Nova fixture (documented API answers; see
// novatest) through a clouds.yaml entry, as the config names it: servers
// vmglue did not know are published, a server deleted and archived is
// deleted after two sweeps.
func TestOpenStack(t *testing.T) {
	e := newEnv(t)
	f := novatest.Start(t)
	for i := range 4 {
		f.SetServer(novatest.Server(fmt.Sprintf("0000000%d-aaaa-4bbb-8ccc-000000000000", i), fmt.Sprintf("app%d", i), "active", "p1",
			fmt.Sprintf("10.1.0.%d", 10+i), fmt.Sprintf("fa:16:3e:00:01:%02x", i)))
	}
	cloudsYAML := filepath.Join(t.TempDir(), "clouds.yaml")
	yaml := fmt.Sprintf("clouds:\n  lab:\n    auth:\n      auth_url: %s\n      username: %s\n      password: %s\n      project_name: %s\n      user_domain_name: %s\n      project_domain_name: %s\n    region_name: RegionOne\n",
		f.IdentityURL, f.User, f.Password, f.Project, f.Domain, f.Domain)
	if err := os.WriteFile(cloudsYAML, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &sweep.Config{OpenStack: []sweep.OpenStackCloud{{Cloud: "os1", OSCloud: "lab", CloudsFile: cloudsYAML, PageSize: 3}}}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sweepers, closeAll, err := sweep.Build(ctx, cfg, "os1", e.js, sweep.JetStreamPublisher{JS: e.js}, nil, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	if len(sweepers) != 1 || sweepers[0].Cloud() != "os1" {
		t.Fatalf("sweepers %v", sweepers)
	}
	s := sweepers[0]
	r, err := e.run(s, sweep.Mode{})
	if err != nil || r.New != 4 {
		t.Fatalf("first sweep: %+v %v; want 4 new", r, err)
	}
	if r, err = e.run(s, sweep.Mode{}); err != nil || r.Published() != 0 {
		t.Fatalf("second sweep: %+v %v; want nothing", r, err)
	}
	f.RemoveServer("00000002-aaaa-4bbb-8ccc-000000000000")
	for i, want := range []int{0, 1} {
		if r, err = e.run(s, sweep.Mode{}); err != nil || r.Deleted != want {
			t.Fatalf("sweep %d without the server: %+v %v; want %d deleted", i+1, r, err, want)
		}
	}
	evs := e.events()
	last := evs[len(evs)-1]
	if last.Type != "vm.deleted" || last.Source != "openstack://os1" || last.Data.State != "deleted" || last.Data.NICs[0].IP != "10.1.0.12" {
		t.Fatalf("last event %+v", last)
	}
	if _, _, err := sweep.Build(ctx, cfg, "nope", e.js, sweep.JetStreamPublisher{JS: e.js}, nil, zerolog.Nop()); err == nil {
		t.Fatal("Build of an unconfigured cloud succeeded")
	}
}
