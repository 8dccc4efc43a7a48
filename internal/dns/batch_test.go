package dns

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
	"github.com/vmglue/vmglue/internal/worker"
)

// applyAll converges vms concurrently, like the runtime does for different
// VMs, and returns each result and error by index.
func applyAll(t testing.TB, tg *Target, vms []*eventbus.VM, haves []worker.Objects) ([]worker.Objects, []error) {
	t.Helper()
	got := make([]worker.Objects, len(vms))
	errs := make([]error, len(vms))
	var wg sync.WaitGroup
	for i, vm := range vms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var have worker.Objects
			if haves != nil {
				have = haves[i]
			}
			got[i], errs[i] = converge(t, context.Background(), tg, vm, have)
		}()
	}
	wg.Wait()
	return got, errs
}

func manyVMs(n int) []*eventbus.VM {
	vms := make([]*eventbus.VM, n)
	for i := range vms {
		vms[i] = testVM(fmt.Sprint(1000+i), fmt.Sprintf("vm%d", i), fmt.Sprintf("10.1.%d.%d", i/250, i%250+1))
	}
	return vms
}

func TestBatching(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	tg := newTarget(t, testConfig(b))
	vms := manyVMs(200)

	got, errs := applyAll(t, tg, vms, nil)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("vm %d: %v", i, err)
		}
	}
	st := tg.Stats()
	t.Logf("200 VMs created with %d UPDATE messages, %d records", st.Messages, st.Records)
	if st.Messages >= 50 {
		t.Fatalf("%d UPDATE messages for 200 VMs, want < 50", st.Messages)
	}
	for i := range vms {
		expect(t, b, fmt.Sprintf("vm%d.cloud.test.", i), mdns.TypeA, fmt.Sprintf("10.1.%d.%d", i/250, i%250+1))
		expect(t, b, fmt.Sprintf("%d.%d.1.10.in-addr.arpa.", i%250+1, i/250), mdns.TypePTR, fmt.Sprintf("vm%d.cloud.test.", i))
	}

	for _, vm := range vms {
		vm.Kind = eventbus.KindDeleted
	}
	sent := tg.Stats().Messages
	_, errs = applyAll(t, tg, vms, got)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("delete vm %d: %v", i, err)
		}
	}
	if n := tg.Stats().Messages - sent; n >= 50 {
		t.Fatalf("%d UPDATE messages to delete 200 VMs, want < 50", n)
	}
	expect(t, b, "vm7.cloud.test.", mdns.TypeA)
}

// The batch bounds split a burst into more messages, each within bounds:
// every record still lands.
func TestBatchBounds(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	for _, tc := range []struct {
		name       string
		maxRecords int
		maxBytes   int
	}{
		{name: "max_records 20", maxRecords: 20},
		{name: "max_bytes 1500", maxBytes: 1500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(b)
			cfg.Batch.MaxRecords, cfg.Batch.MaxBytes = tc.maxRecords, tc.maxBytes
			cfg.Batch.Window = 50 * time.Millisecond // let the burst meet in the batcher
			tg := newTarget(t, cfg)
			vms := manyVMs(100)
			got, errs := applyAll(t, tg, vms, nil)
			for i, err := range errs {
				if err != nil {
					t.Fatalf("vm %d: %v", i, err)
				}
			}
			st := tg.Stats()
			t.Logf("100 VMs: %d UPDATE messages, %d update records", st.Messages, st.Records)
			// Each VM is an A, a TXT and a PTR plus their prerequisites.
			if tc.maxRecords > 0 && st.Messages*uint64(tc.maxRecords) < st.Records {
				t.Fatalf("%d messages for %d update records: some message has more than %d", st.Messages, st.Records, tc.maxRecords)
			}
			if st.Messages < 10 {
				t.Fatalf("%d messages: the bound did not split the burst", st.Messages)
			}
			for i := range vms {
				expect(t, b, fmt.Sprintf("vm%d.cloud.test.", i), mdns.TypeA, fmt.Sprintf("10.1.%d.%d", i/250, i%250+1))
				expect(t, b, fmt.Sprintf("%d.%d.1.10.in-addr.arpa.", i%250+1, i/250), mdns.TypePTR, fmt.Sprintf("vm%d.cloud.test.", i))
			}
			for _, vm := range vms { // the next case starts from an empty zone
				vm.Kind = eventbus.KindDeleted
			}
			if _, errs := applyAll(t, tg, vms, got); errors.Join(errs...) != nil {
				t.Fatalf("delete: %v", errors.Join(errs...))
			}
			expect(t, b, "vm7.cloud.test.", mdns.TypeA)
		})
	}
}

func TestBatchWithOneConflict(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	cfg := testConfig(b)
	cfg.Batch.Window = 50 * time.Millisecond // make sure they share messages
	tg := newTarget(t, cfg)
	b.AddForeign(t, "vm13.cloud.test. 60 A 10.9.9.9")
	b.AddForeign(t, "27.0.1.10.in-addr.arpa. 60 PTR mail.example.org.") // vm26's address

	vms := manyVMs(40)
	_, errs := applyAll(t, tg, vms, nil)
	for i, err := range errs {
		switch i {
		case 13, 26:
			if !worker.IsPermanent(err) || !errors.Is(err, worker.ErrConflict) {
				t.Errorf("vm %d: err = %v, want a permanent conflict", i, err)
			}
		default:
			if err != nil {
				t.Errorf("vm %d: %v", i, err)
			}
		}
	}
	expect(t, b, "vm13.cloud.test.", mdns.TypeA, "10.9.9.9")
	expect(t, b, "27.0.1.10.in-addr.arpa.", mdns.TypePTR, "mail.example.org.")
	expect(t, b, "vm26.cloud.test.", mdns.TypeA, "10.1.0.27") // its forward zone was fine
	expect(t, b, "vm12.cloud.test.", mdns.TypeA, "10.1.0.13")
	expect(t, b, "14.0.1.10.in-addr.arpa.", mdns.TypePTR) // no PTR to a name vm13 could not take
	if st := tg.Stats(); st.Messages >= 40 {
		t.Errorf("%d messages for 40 VMs with 2 conflicts, want fewer than one per VM", st.Messages)
	} else {
		t.Logf("40 VMs, 2 conflicts: %d messages", st.Messages)
	}
}

// Two VMs that want the same name in the same window: exactly one gets it.
func TestBatchSameNameRace(t *testing.T) {
	b := testenv.StartBIND(t, testenv.BINDOptions{})
	cfg := testConfig(b)
	cfg.Batch.Window = 50 * time.Millisecond
	tg := newTarget(t, cfg)
	vms := []*eventbus.VM{testVM("1", "dup", "10.2.0.1"), testVM("2", "dup", "10.2.0.2")}
	_, errs := applyAll(t, tg, vms, nil)
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("errs = %v, want exactly one conflict", errs)
	}
	winner := 0
	if errs[0] != nil {
		winner = 1
	}
	if !errors.Is(errs[1-winner], worker.ErrConflict) {
		t.Fatalf("loser err = %v, want ErrConflict", errs[1-winner])
	}
	expect(t, b, "dup.cloud.test.", mdns.TypeA, vms[winner].NICs[0].IP)
}
