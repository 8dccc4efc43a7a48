package serve_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/opennebula/api/apitest"
	"github.com/vmglue/vmglue/internal/cli"
	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/sweep"
	"github.com/vmglue/vmglue/internal/testenv"
)

// Hooks and serve were off while VMs came and went: the sweep of the
// cloud's API (the in-test oned of apitest: oned cannot be installed here)
// closes the gap in a real BIND. A VM that booted is published by serve's
// sweep at start; a VM deleted is removed after two sweeps (serve's at its
// next start, then `vmglue sweep`), not one; an API answering an empty pool
// once deletes nothing.
func TestSweepToBIND(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	const session = "oneadmin:e2e-sweep-secret"
	one := apitest.Start(t, session)
	t0 := time.Now().Unix()
	for _, v := range []testenv.OneVM{running(61, "booted61", "10.0.6.1", "", t0), running(62, "booted62", "10.0.6.2", "", t0)} {
		if err := one.SetVM(string(testenv.OneVMXML(v))); err != nil {
			t.Fatal(err)
		}
	}
	auth := writeFile(t, "one_auth", session+"\n")
	sweepYAML := fmt.Sprintf("sweep:\n  interval: 1h\n  max_delete_share: 0.5\n  opennebula:\n    - cloud: one\n      endpoint: %s\n      auth_file: %s\n", one.URL, auth)
	sc, err := loadSweep(t, sweepYAML)
	if err != nil {
		t.Fatal(err)
	}
	cfg := dnsConfig(t, b, "")
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Sweep = sc

	in := start(t, cfg)
	testenv.WaitFor(t, 30*time.Second, "booted61 A", resolves(t, b, "booted61.cloud.test.", mdns.TypeA, "10.0.6.1"))
	testenv.WaitFor(t, 10*time.Second, "booted62 A", resolves(t, b, "booted62.cloud.test.", mdns.TypeA, "10.0.6.2"))
	awaitMetrics(t, in, `vmglue_sweep_events_published_total{cloud="one",reason="new"} 2`, `vmglue_sweep_vms_seen{cloud="one"} 2`)
	in.stop()

	// VM 62 is deleted while serve is off; serve's start sweep counts it.
	one.RemoveVM(62)
	in = start(t, cfg)
	_, js := in.connect(t)
	testenv.WaitFor(t, 30*time.Second, "62 counted missing", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		kv, err := js.KeyValue(ctx, eventbus.BucketSweep)
		if err != nil {
			return false
		}
		_, err = kv.Get(ctx, "one.62")
		return err == nil
	})
	idle(t, js, "dns")
	if got := b.Lookup(t, "booted62.cloud.test.", mdns.TypeA); len(got) != 1 {
		t.Fatalf("booted62 A after one sweep without it: %v, want it kept", got)
	}

	path := writeFile(t, "vmglue.yaml", sweepYAML)
	runSweep := func(args ...string) string {
		t.Helper()
		var out, errb strings.Builder
		if code := cli.Execute(context.Background(), append([]string{"sweep", "-c", path, "-s", in.roleURL(t, eventbus.RoleOps)}, args...), &out, &errb); code != 0 {
			t.Fatalf("vmglue sweep: exit %d: %s%s", code, out.String(), errb.String())
		}
		return out.String()
	}
	// The plan first: the delete is shown, nothing happens.
	if out := runSweep("--dry-run", "--json"); !strings.Contains(out, `"dry_run":true`) || !strings.Contains(out, `"deleted":1`) {
		t.Fatalf("dry run: %q", out)
	}
	if out := runSweep(); !strings.Contains(out, "1 deleted") || !strings.Contains(out, "one.62 booted62") {
		t.Fatalf("second sweep: %q, want 62 deleted", out)
	}
	var out, errb strings.Builder
	if code := cli.Execute(context.Background(), []string{"sweep", "-c", path, "-s", in.roleURL(t, eventbus.RoleOps), "--cloud", "nope"}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "cloud nope: not in the sweep section") {
		t.Fatalf("sweep --cloud nope: exit %d %q", code, errb.String())
	}
	testenv.WaitFor(t, 30*time.Second, "booted62 A gone", gone(t, b, "booted62.cloud.test.", mdns.TypeA))
	testenv.WaitFor(t, 10*time.Second, "booted62 PTR gone", gone(t, b, "2.6.0.10.in-addr.arpa.", mdns.TypePTR))

	// The API answers an empty pool once.
	var empty atomic.Bool
	empty.Store(true)
	one.Inject(func(c apitest.Call) *apitest.Reply {
		if c.Method == "one.vmpool.infoextended" && c.Params[1] == 0 && empty.CompareAndSwap(true, false) {
			return &apitest.Reply{Body: "<VM_POOL></VM_POOL>"}
		}
		return nil
	})
	if out := runSweep(); !strings.Contains(out, "0 deleted; 1 missing") {
		t.Fatalf("sweep of an empty pool: %q", out)
	}
	if out := runSweep(); !strings.Contains(out, "0 new, 0 changed, 0 deleted; 0 missing") {
		t.Fatalf("sweep after it: %q", out)
	}
	idle(t, js, "dns")
	if got := b.Lookup(t, "booted61.cloud.test.", mdns.TypeA); len(got) != 1 {
		t.Fatalf("booted61 A after an empty answer: %v, want it kept", got)
	}

	// oned refuses the credentials: exit 1, one line naming the user and
	// the file, never the password.
	one.Inject(func(apitest.Call) *apitest.Reply {
		return &apitest.Reply{ErrorCode: 0x100, Message: "[one.vmpool.infoextended] User couldn't be authenticated, aborting call."}
	})
	out.Reset()
	errb.Reset()
	code := cli.Execute(context.Background(), []string{"sweep", "-c", path, "-s", in.roleURL(t, eventbus.RoleOps)}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), `authentication failed for user "oneadmin" (credentials from auth_file `+auth+`)`) ||
		strings.Contains(out.String()+errb.String(), "e2e-sweep-secret") {
		t.Fatalf("sweep refused by oned: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}

// loadSweep loads a config file holding only a sweep section.
func loadSweep(t *testing.T, yaml string) (*sweep.Config, error) {
	t.Helper()
	c, err := config.Load(writeFile(t, "sweep.yaml", yaml))
	if err != nil {
		return nil, err
	}
	return c.Sweep, nil
}
