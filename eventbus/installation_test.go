package eventbus_test

import (
	"context"
	"sync"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
)

// TestInstallation: a configured identity wins; otherwise the first start
// generates one and every later (or concurrent) call on the bus gets it.
func TestInstallation(t *testing.T) {
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.URL)
	ctx := context.Background()
	if err := eventbus.Provision(ctx, js, eventbus.ProvisionOptions{}); err != nil {
		t.Fatal(err)
	}
	if id, err := eventbus.Installation(ctx, js, "site-a"); err != nil || id != "site-a" {
		t.Fatalf("configured: %q, %v", id, err)
	}
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			id, err := eventbus.Installation(ctx, js, "")
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || !eventbus.ValidInstallation(id) {
			t.Fatalf("generated ids %q, want one valid id", ids)
		}
	}
	for _, tc := range []struct {
		id string
		ok bool
	}{{"vg-0a1b2c3d4e5f", true}, {"site-a", true}, {"", false}, {"-a", false}, {"Site", false}, {"a,b", false}, {"a b", false}} {
		if eventbus.ValidInstallation(tc.id) != tc.ok {
			t.Errorf("ValidInstallation(%q) = %v", tc.id, !tc.ok)
		}
	}
}
