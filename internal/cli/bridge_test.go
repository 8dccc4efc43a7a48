package cli_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/hooks/openstack"
	"github.com/vmglue/vmglue/internal/testenv"
)

// The real binary as systemd runs vmglue-bridge-openstack.service: the
// config's first RabbitMQ URL is down, the second is amqps with a client
// certificate and the password from a file; READY=1 once it consumes; a
// notification becomes an event; /metrics counts it; SIGTERM exits 0.
func TestBridgeOpenStackProcess(t *testing.T) {
	ca := testenv.NewTestCA(t)
	rmq := testenv.StartRabbitMQ(t, testenv.RabbitMQOptions{TLS: ca})
	ns := natstest.Start(t)
	bin, err := testenv.BuildBinary("github.com/vmglue/vmglue/cmd/vmglue", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pw := filepath.Join(dir, "amqp.secret")
	if err := os.WriteFile(pw, []byte("guest\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, key := ca.Issue(t, "vmglue-bridge", false)
	down := fmt.Sprintf("amqps://guest@127.0.0.1:%d/", testenv.FreePort(t))
	cfg := filepath.Join(dir, "vmglue.yaml")
	text := fmt.Sprintf(`nats: {url: %q}
log: {format: json}
bridge:
  openstack:
    cloud: os
    formats: [versioned]
    amqp:
      urls: [%q, %q]
      password_file: %s
      ca_file: %s
      cert_file: %s
      key_file: %s
      queue: vmglue-process-test
    spool_dir: %s
`, ns.URL, down, strings.Replace(rmq.TLSURL, "amqps://", "amqps://guest@", 1), pw, ca.CAFile, cert, key, filepath.Join(dir, "spool"))
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	metrics := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	p := startNotifying(t, bin, "bridge", "openstack", "--config", cfg, "--metrics-listen", metrics)
	p.awaitReady(t)

	// Nova's notifier: topic exchange "nova", oslo 2.0 envelope, a context token.
	conn, err := amqp.Dial(rmq.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	body := openstack.Envelope([]byte(`{"message_id": "m-1", "event_type": "instance.power_on.end", "priority": "INFO",
		"timestamp": "2026-12-03 10:00:00.000001", "_context_auth_token": "gAAAAAprocess-token",
		"payload": {"nova_object.name": "InstanceActionPayload", "nova_object.version": "1.8", "nova_object.data":
		{"uuid": "5d1c0000-0000-4000-8000-000000000001", "display_name": "proc1", "state": "active", "ip_addresses": []}}}`))
	if err := ch.PublishWithContext(context.Background(), "nova", "versioned_notifications.info", false, false, amqp.Publishing{Body: body}); err != nil {
		t.Fatal(err)
	}
	_, js := natstest.Connect(t, ns.URL)
	testenv.WaitFor(t, 30*time.Second, "the event", func() bool { return len(natstest.Events(t, js)) == 1 })
	testenv.WaitFor(t, 10*time.Second, "metrics", func() bool {
		m := get(t, "http://"+metrics+"/metrics")
		return strings.Contains(m, `vmglue_bridge_notifications_total{result="published"} 1`) &&
			strings.Contains(m, "vmglue_bridge_amqp_connects_total 1")
	})
	p.term(t)
	for _, secret := range []string{"gAAAAAprocess-token", "_context"} {
		if strings.Contains(p.logs.String(), secret) {
			t.Errorf("log holds %q:\n%s", secret, p.logs.String())
		}
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
