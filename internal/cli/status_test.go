package cli_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/ops"
	"github.com/vmglue/vmglue/internal/ops/opstest"
	"github.com/vmglue/vmglue/internal/testenv"
)

func TestStatus(t *testing.T) {
	e := newOpsEnv(t, "dns", "lb")
	e.Targets["lb"].Fail.Store(true)
	for _, id := range []string{"1", "2", "3"} {
		e.Publish(opstest.VM(id, eventbus.KindRunning))
	}
	e.Idle(t)
	testenv.WaitFor(t, 20*time.Second, "3 lb dead letters", func() bool { return e.DeadLetters(t) == 3 })

	code, out, errs := e.run(t, "status")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	t.Logf("%s", out)
	rows := []string{
		`(?m)^VMGLUE_EVENTS\s+3\s+\d+\s+\S+Z\s+\S+Z$`,
		`(?m)^VMGLUE_DLQ\s+3\s+\d+\s+\S+Z\s+\S+Z$`,
		// worker consumer pending ack-pending redelivered last-delivered records dead-letters
		`(?m)^dns\s+vmglue-dns\s+0\s+0\s+0\s+#3 \S+Z\s+3\s+0$`,
		`(?m)^lb\s+vmglue-lb\s+0\s+0\s+0\s+#3 \S+Z\s+3\s+3$`,
		`(?m)^VMs known:\s+3$`,
	}
	for _, r := range rows {
		if !regexp.MustCompile(r).MatchString(out) {
			t.Errorf("status lacks a row matching %s", r)
		}
	}

	code, out, errs = e.run(t, "status", "--json")
	var st ops.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("--json: exit %d %s\n%s", code, errs, out)
	}
	if st.VMs != 3 || len(st.Streams) != 2 || st.Streams[0].Messages != 3 || st.Streams[1].Messages != 3 || len(st.Workers) != 2 {
		t.Fatalf("status: %+v", st)
	}
	lb := st.Workers[1]
	if lb.Worker != "lb" || lb.Consumer == nil || lb.Consumer.Name != "vmglue-lb" || lb.DeadLetters != 3 || lb.Records != 3 ||
		lb.Consumer.LastDelivered != 3 || lb.Consumer.Pending != 0 {
		t.Fatalf("lb: %+v %+v", lb, lb.Consumer)
	}
}

func TestOpsCommandsNATSDown(t *testing.T) {
	for _, args := range [][]string{{"status"}, {"vm", "1"}, {"dlq", "list"}, {"dlq", "drop", "--all"}, {"replay", "--all"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, _, errs := runAt(t, "nats://127.0.0.1:1", args...)
			if code != 1 || !regexp.MustCompile(`^vmglue: connect to nats nats://127.0.0.1:1: .*\n$`).MatchString(errs) {
				t.Fatalf("exit %d stderr %q: want exit 1 and one connect error line", code, errs)
			}
		})
	}
}
