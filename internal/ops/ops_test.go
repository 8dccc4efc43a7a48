package ops_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/ops"
	"github.com/vmglue/vmglue/internal/ops/opstest"
	"github.com/vmglue/vmglue/internal/worker"
)

// ctx is a context for the calls of one test.
func ctx(t testing.TB) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// listEnv has workers dns (working) and lb (failing: an error record and a
// dead letter per VM) and the running VMs 1, 2 and 10 of cloud one; VM 2
// has a secret attribute. The dns record of VM 10 is rewritten with a
// pending object, as an Apply cut off by a crash leaves it.
func listEnv(t *testing.T) *opstest.Env {
	t.Helper()
	e := opstest.New(t, "dns", "lb")
	e.Targets["lb"].Fail.Store(true)
	for _, id := range []string{"1", "2", "10"} {
		v := opstest.VM(id, eventbus.KindRunning)
		if id == "2" {
			v.Attributes = map[string]string{"DB_PASSWORD": "pw-hunter2", "ROLE": "web"}
		}
		e.Publish(v)
	}
	e.Idle(t)
	e.WaitDeadLetters(t, 3)
	putRecord(t, e, "dns.one.10", worker.Record{Applied: worker.Objects{}, Pending: worker.Objects{"A web10": "10.0.0.10"}})
	return e
}

// putRecord writes a registry record as the runtime does.
func putRecord(t *testing.T, e *opstest.Env, key string, rec worker.Record) {
	t.Helper()
	rec.EventID, rec.Updated = "x", time.Now().UTC()
	b, _ := json.Marshal(rec)
	kv, err := e.JS.KeyValue(ctx(t), eventbus.BucketApplied)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx(t), key, b); err != nil {
		t.Fatal(err)
	}
}

func TestListVMs(t *testing.T) {
	e := listEnv(t)
	// A worker that failed transiently for VM 1: an error, no dead letter.
	putRecord(t, e, "puppet.one.1", worker.Record{Error: "clean cert: timeout"})
	tests := []struct {
		name  string
		query string
		ids   []string
	}{
		{"all, numeric ids by number", "", []string{"1", "2", "10"}},
		{"by name, ignoring case", "WEB1", []string{"1", "10"}},
		{"by address", "10.0.0.2", []string{"2"}},
		{"by cloud/id", "one/10", []string{"10"}},
		{"nothing", "nope", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vms, err := ops.ListVMs(ctx(t), e.JS, ops.VMListRequest{Query: tt.query, Workers: []string{"dns", "lb", "puppet"}})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, v := range vms {
				ids = append(ids, v.ID)
			}
			if !slices.Equal(ids, tt.ids) {
				t.Fatalf("ids %v, want %v", ids, tt.ids)
			}
		})
	}

	vms, err := ops.ListVMs(ctx(t), e.JS, ops.VMListRequest{Workers: []string{"dns", "lb", "puppet"}})
	if err != nil {
		t.Fatal(err)
	}
	v1 := vms[0]
	if v1.Cloud != "one" || v1.Name != "web1" || v1.Kind != eventbus.KindRunning || v1.Host != "node1" || v1.Deleted ||
		!slices.Equal(v1.IPs, []string{"10.0.0.1"}) || v1.Changed.IsZero() {
		t.Fatalf("summary of one/1: %+v", v1)
	}
	want := map[string]map[string]string{ // id -> worker -> state
		"1":  {"dns": ops.StateConverged, "lb": ops.StateDeadLetter, "puppet": ops.StateError},
		"2":  {"dns": ops.StateConverged, "lb": ops.StateDeadLetter, "puppet": ops.StateNone},
		"10": {"dns": ops.StatePending, "lb": ops.StateDeadLetter, "puppet": ops.StateNone},
	}
	for _, v := range vms {
		got := map[string]string{}
		for w, s := range v.Workers {
			got[w] = s.State
		}
		if !maps.Equal(got, want[v.ID]) {
			t.Errorf("one/%s: states %v, want %v", v.ID, got, want[v.ID])
		}
		if lb := v.Workers["lb"]; lb.DeadLetters != 1 || lb.Error != "apply: boom" || lb.Applied != 0 {
			t.Errorf("one/%s lb: %+v", v.ID, lb)
		}
	}
	if dns := vms[0].Workers["dns"]; dns.Applied != 1 || dns.Pending != 0 || dns.Updated.IsZero() {
		t.Errorf("one/1 dns: %+v", dns)
	}
	last := ops.LastErrors(vms)
	if len(last) != 2 || last["lb"].Error != "apply: boom" || last["puppet"] != (ops.WorkerError{Cloud: "one", ID: "1",
		Error: "clean cert: timeout", At: vms[0].Workers["puppet"].Updated}) {
		t.Fatalf("last errors: %+v, want lb's and puppet's", last)
	}
}

func TestLastErrorsNewest(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	vms := []ops.VMSummary{
		{Cloud: "one", ID: "1", Workers: map[string]ops.VMWorkerState{"dns": {State: ops.StateError, Error: "old", Updated: t0}}},
		{Cloud: "one", ID: "2", Workers: map[string]ops.VMWorkerState{"dns": {State: ops.StateError, Error: "new", Updated: t0.Add(time.Minute)},
			"lb": {State: ops.StateConverged, Updated: t0.Add(time.Hour)}}},
		{Cloud: "one", ID: "3", Workers: map[string]ops.VMWorkerState{"dns": {State: ops.StateError, Error: "older", Updated: t0.Add(-time.Hour)}}},
	}
	got := ops.LastErrors(vms)
	if len(got) != 1 || got["dns"] != (ops.WorkerError{Cloud: "one", ID: "2", Error: "new", At: t0.Add(time.Minute)}) {
		t.Fatalf("LastErrors: %+v", got)
	}
}

func TestVMReports(t *testing.T) {
	e := listEnv(t)
	other := opstest.VM("2", eventbus.KindRunning)
	other.Cloud = "two"
	e.Publish(other)
	e.Idle(t)
	e.WaitDeadLetters(t, 4)

	reps, err := ops.VMReports(ctx(t), e.JS, ops.VMRequest{ID: "2", Workers: []string{"dns", "lb", "puppet"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 2 || reps[0].Cloud != "one" || reps[1].Cloud != "two" {
		t.Fatalf("want reports of one/2 and two/2, sorted: %+v", reps)
	}
	r := reps[0]
	if len(r.Timeline) != 1 || r.Timeline[0].Event == nil || r.Timeline[0].Seq != 2 || r.Timeline[0].Stored.IsZero() ||
		r.Snapshot == nil || r.Workers["dns"] == nil || r.Workers["lb"] == nil || r.Workers["lb"].Error == "" ||
		len(r.DeadLetters) != 1 || r.DeadLetters[0].Worker != "lb" {
		t.Fatalf("report of one/2: %+v", r)
	}
	if rec, ok := r.Workers["puppet"]; !ok || rec != nil {
		t.Fatalf("a configured worker without a record has a nil entry: %v %v", rec, ok)
	}
	// Secrets are redacted by default, everywhere, and kept when asked.
	for _, show := range []bool{false, true} {
		reps, err := ops.VMReports(ctx(t), e.JS, ops.VMRequest{Cloud: "one", ID: "2", ShowSecrets: show})
		if err != nil {
			t.Fatal(err)
		}
		want := map[bool]string{false: eventbus.RedactedValue, true: "pw-hunter2"}[show]
		r := reps[0]
		if got := r.Timeline[0].Event.Data.Attributes["DB_PASSWORD"]; got != want {
			t.Errorf("show %t: timeline DB_PASSWORD %q, want %q", show, got, want)
		}
		if got := r.Snapshot.Attributes["DB_PASSWORD"]; got != want {
			t.Errorf("show %t: snapshot DB_PASSWORD %q, want %q", show, got, want)
		}
		if !strings.Contains(string(r.DeadLetters[0].Event), want) {
			t.Errorf("show %t: dead letter event lacks %q: %s", show, want, r.DeadLetters[0].Event)
		}
		if r.Timeline[0].Event.Data.Attributes["ROLE"] != "web" {
			t.Errorf("show %t: ROLE is not a secret", show)
		}
	}

	for _, req := range []ops.VMRequest{{ID: "404"}, {ID: "a.b"}, {ID: "2", Cloud: "x y"}} {
		_, err := ops.VMReports(ctx(t), e.JS, req)
		if err == nil || errors.Is(err, ops.ErrNothing) != (req.ID == "404") {
			t.Errorf("%+v: error %v (ErrNothing only for an unknown VM)", req, err)
		}
	}
}

func TestGetStatus(t *testing.T) {
	e := listEnv(t)
	st, err := ops.GetStatus(ctx(t), e.JS)
	if err != nil {
		t.Fatal(err)
	}
	if st.VMs != 3 || len(st.Streams) != 2 || st.Streams[0].Name != eventbus.StreamEvents || st.Streams[0].Messages != 3 ||
		st.Streams[1].Name != eventbus.StreamDLQ || st.Streams[1].Messages != 3 || st.Streams[0].First == nil || len(st.Workers) != 2 {
		t.Fatalf("status: %+v", st)
	}
	dns, lb := st.Workers[0], st.Workers[1]
	if dns.Worker != "dns" || dns.DeadLetters != 0 || dns.Records != 3 || dns.Consumer == nil {
		t.Fatalf("dns: %+v", dns)
	}
	if lb.Worker != "lb" || lb.Consumer == nil || lb.Consumer.Name != "vmglue-lb" || lb.DeadLetters != 3 || lb.Records != 3 ||
		lb.Consumer.LastDelivered != 3 || lb.Consumer.Pending != 0 || lb.Consumer.LastActive == nil {
		t.Fatalf("lb: %+v %+v", lb, lb.Consumer)
	}
}
