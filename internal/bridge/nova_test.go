package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/vmglue/vmglue/hooks/openstack"
)

// contextToken stands for the live keystone token Nova puts in every
// message's context; it must never leave the bridge.
const contextToken = "gAAAAABcontext-token-never-logged"

// nova publishes onto RabbitMQ as Nova's notifier does: the topic exchange
// "nova" declared as oslo.messaging declares it, routing key
// <topic>.<priority>, the oslo 2.0 envelope.
type nova struct {
	t    testing.TB
	conn *amqp.Connection
	ch   *amqp.Channel
}

func newNova(t testing.TB, url string) *nova {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("nova: dial rabbitmq: %v", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("nova", amqp.ExchangeTopic, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	n := &nova{t: t, conn: conn, ch: ch}
	t.Cleanup(func() { conn.Close() })
	return n
}

// send publishes body and waits for the broker's confirm.
func (n *nova) send(routingKey string, body []byte) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conf, err := n.ch.PublishWithDeferredConfirmWithContext(ctx, "nova", routingKey, false, false,
		amqp.Publishing{ContentType: "application/json", ContentEncoding: "utf-8", Body: body})
	if err != nil {
		n.t.Fatalf("nova: publish: %v", err)
	}
	if ok, err := conf.WaitContext(ctx); err != nil || !ok {
		n.t.Fatalf("nova: publish not confirmed: %v", err)
	}
}

// notification is a versioned instance notification in the oslo 2.0
// envelope, with the message context Nova adds.
func notification(t testing.TB, eventType, uuid, messageID string, at time.Time, state string) []byte {
	t.Helper()
	ip := func(v int, addr string) map[string]any {
		return map[string]any{"nova_object.name": "IpPayload", "nova_object.namespace": "nova", "nova_object.version": "1.0",
			"nova_object.data": map[string]any{"label": "net1", "mac": "fa:16:3e:00:00:01", "port_uuid": "p-" + uuid,
				"version": v, "address": addr, "device_name": "tap0", "meta": map[string]any{}}}
	}
	inner := map[string]any{
		"message_id": messageID, "publisher_id": "nova-compute:cmp1", "event_type": eventType, "priority": "INFO",
		"timestamp": at.UTC().Format("2006-01-02 15:04:05.000000"), "_unique_id": "u" + messageID,
		"_context_auth_token": contextToken, "_context_user_name": "admin", "_context_project_name": "admin",
		"payload": map[string]any{"nova_object.name": "InstanceActionPayload", "nova_object.namespace": "nova",
			"nova_object.version": "1.8", "nova_object.data": map[string]any{
				"uuid": uuid, "display_name": "vm-" + uuid[:8], "host_name": "vm-" + uuid[:8], "user_id": "u1",
				"tenant_id": "p1", "host": "cmp1", "state": state, "task_state": nil, "metadata": map[string]string{},
				"updated_at": at.UTC().Format(time.RFC3339), "created_at": at.UTC().Format(time.RFC3339),
				"ip_addresses": []any{ip(4, "192.0.2.10"), ip(6, "2001:db8::10")},
			}},
	}
	b, err := json.Marshal(inner)
	if err != nil {
		t.Fatal(err)
	}
	return openstack.Envelope(b)
}

// uuidN is the instance uuid of test VM i.
func uuidN(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }
