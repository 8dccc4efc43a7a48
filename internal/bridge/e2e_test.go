package bridge_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/attachinterfaces"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/bridge"
	"github.com/vmglue/vmglue/internal/cli"
	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/serve"
	"github.com/vmglue/vmglue/internal/testenv"
)

// e2e is serve (embedded NATS, the dns worker on a real BIND) and the
// bridge on the test OpenStack's RabbitMQ, both configured from one file.
type e2e struct {
	stack     *testenv.OpenStackStack
	bind      *testenv.BIND
	natsURL   string
	cfg       *config.Config
	file      string // the config file: its data directory holds the role credentials
	queue     string
	log       zerolog.Logger
	stopServe func()
}

func startE2E(t *testing.T) *e2e {
	t.Helper()
	stack := testenv.OpenStack(t)
	stack.SetOSEnv(t) // the lookup reads OS_* as the OpenStack CLI does
	b := testenv.StartBIND(t, testenv.BINDOptions{Zones: []string{"cloud.test.", "2.0.192.in-addr.arpa.", "8.b.d.0.1.0.0.2.ip6.arpa."}})
	queue := "vmglue-e2e-" + testenv.RandomName(t)
	file := filepath.Join(t.TempDir(), "vmglue.yaml")
	// A fixed port: serve (and its embedded NATS) may be restarted.
	text := fmt.Sprintf(`nats:
  embedded: {listen: "127.0.0.1:%d", data_dir: %q}
metrics: {listen: ""}
runtime: {backoff_base: 50ms, backoff_max: 300ms}
workers:
  dns:
    servers: [%q]
    tsig: {name: %s, secret_file: %s}
    forward_zones: [cloud.test.]
    reverse_zones: [2.0.192.in-addr.arpa., 8.b.d.0.1.0.0.2.ip6.arpa.]
    present_kinds: [created, starting, running, changing, migrating]
    timeout: 2s
bridge:
  openstack:
    cloud: os
    amqp: {urls: [%q], queue: %s}
    lookup: {enabled: true}
    spool_dir: %q
`, testenv.FreePort(t), t.TempDir(), b.Addr, b.KeyName, b.SecretPath, stack.AMQPURL, queue, t.TempDir())
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testenv.LogBuffer{}
	log := zerolog.New(logs).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	e := &e2e{stack: stack, bind: b, cfg: cfg, file: file, queue: queue, log: log}
	t.Cleanup(func() {
		if strings.Contains(logs.String(), "_context") {
			t.Error("a log line holds the message context")
		}
		if t.Failed() {
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			t.Logf("serve and bridge log (last %d lines):\n%s", min(len(lines), 80), strings.Join(lines[max(0, len(lines)-80):], "\n"))
		}
	})
	// Cleanups run last first: the queue goes after the bridge stopped.
	t.Cleanup(func() { testenv.DeleteQueue(t, stack.AMQPURL, queue) })
	e.startServe(t)
	// The bridge is a source: NATS role hook, as `vmglue bridge openstack` connects.
	co, _, err := cfg.RoleConnOptions(eventbus.RoleHook, "", e.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	run(t, "bridge", func(ctx context.Context, ready func()) error {
		return bridge.RunApp(ctx, bridge.AppOptions{Config: *cfg.Bridge.OpenStack, NATS: co,
			Ready: func(string) { ready() }}, log)
	})
	return e
}

// startServe runs serve (again after stopServe: same port, same data).
func (e *e2e) startServe(t *testing.T) {
	t.Helper()
	e.stopServe = run(t, "serve", func(ctx context.Context, ready func()) error {
		return serve.Run(ctx, serve.Options{Config: e.cfg, Ready: func(i serve.Info) { e.natsURL = i.NATSURL; ready() }}, e.log)
	})
}

// run starts fn in the background and waits for its ready call. It
// returns the function that stops it, which also runs when the test ends.
func run(t *testing.T, what string, fn func(ctx context.Context, ready func()) error) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done, ready := make(chan error, 1), make(chan struct{})
	go func() { done <- fn(ctx, func() { close(ready) }) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: %v", what, err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("%s exited: %v", what, err)
	case <-time.After(60 * time.Second):
		t.Fatalf("%s not ready after 60s", what)
	}
	return stop
}

func (e *e2e) has(t *testing.T, name string, qtype uint16, want string) func() bool {
	return func() bool { return slices.Contains(e.bind.Lookup(t, name, qtype), want) }
}

func (e *e2e) gone(t *testing.T, name string, qtype uint16) func() bool {
	return func() bool { return len(e.bind.Lookup(t, name, qtype)) == 0 }
}

// serverIPs returns the fixed IPv4 and IPv6 address Neutron gave srv.
func serverIPs(t *testing.T, srv *servers.Server) (string, string) {
	t.Helper()
	var v4, v6 string
	for _, list := range srv.Addresses {
		addrs, _ := list.([]any)
		for _, a := range addrs {
			m, _ := a.(map[string]any)
			addr, _ := m["addr"].(string)
			if strings.Contains(addr, ":") {
				v6 = addr
			} else {
				v4 = addr
			}
		}
	}
	if v4 == "" || v6 == "" {
		t.Fatalf("server %s addresses %v: want an IPv4 and an IPv6", srv.ID, srv.Addresses)
	}
	return v4, v6
}

// A server booted through Nova's API gets its A, AAAA and PTR records; a
// power off removes them (stopped is not a present kind here), a power on
// brings them back, an interface attach adds the new address and its
// detach removes it, a delete removes everything; `vmglue tail` shows the
// events with cloud type openstack.
func TestOpenStackLifecycleToDNS(t *testing.T) {
	e := startE2E(t)
	compute := e.stack.Compute(t)
	name := "e2e-" + testenv.RandomName(t)
	fqdn := name + ".cloud.test."
	// A poison message first: dead-lettered, and the queue moves on.
	nova := newNovaClient(t, e.stack.AMQPURL)
	nova.send(t, "notifications.info", []byte(`{"oslo.version": "2.0", "oslo.message": "{\"_context_auth_token\": \"gAAAAApoison`))
	srv := e.stack.Boot(t, compute, name, map[string]string{"LB_BACKENDS": "web:8080"})
	v4, v6 := serverIPs(t, srv)
	rev4, _ := mdns.ReverseAddr(v4)
	rev6, _ := mdns.ReverseAddr(v6)
	testenv.WaitFor(t, 60*time.Second, "A "+v4, e.has(t, fqdn, mdns.TypeA, v4))
	testenv.WaitFor(t, 10*time.Second, "AAAA "+v6, e.has(t, fqdn, mdns.TypeAAAA, v6))
	testenv.WaitFor(t, 10*time.Second, "PTR "+rev4, e.has(t, rev4, mdns.TypePTR, fqdn))
	testenv.WaitFor(t, 10*time.Second, "PTR "+rev6, e.has(t, rev6, mdns.TypePTR, fqdn))

	var out, errOut bytes.Buffer
	if code := cli.Execute(context.Background(), []string{"dlq", "list", "--worker", bridge.DLQWorker, "--json", "--server", e.natsURL, "-c", e.file}, &out, &errOut); code != 0 {
		t.Fatalf("vmglue dlq list: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), bridge.ReasonPoison) || strings.Contains(out.String(), "gAAAAApoison") {
		t.Fatalf("vmglue dlq list: want the poison message's dead letter, without its context:\n%s", out.String())
	}

	// The lookup, as the OpenStack CLI finds credentials: OS_* variables,
	// or a clouds.yaml entry.
	clouds := filepath.Join(t.TempDir(), "clouds.yaml")
	cloudsYAML := fmt.Sprintf("clouds:\n  e2e:\n    auth:\n      auth_url: %s\n      username: %s\n      password: %s\n      project_name: %s\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: %s\n",
		e.stack.Env["OS_AUTH_URL"], e.stack.Env["OS_USERNAME"], e.stack.Env["OS_PASSWORD"], e.stack.Env["OS_PROJECT_NAME"], e.stack.Env["OS_REGION_NAME"])
	if err := os.WriteFile(clouds, []byte(cloudsYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  bridge.LookupConfig
	}{{"OS_env", bridge.LookupConfig{Enabled: true}}, {"clouds.yaml", bridge.LookupConfig{Enabled: true, Cloud: "e2e"}}} {
		t.Run("lookup "+tc.name, func(t *testing.T) {
			if tc.cfg.Cloud != "" {
				t.Setenv("OS_CLIENT_CONFIG_FILE", clouds)
				t.Setenv("OS_AUTH_URL", "") // the entry, not the environment
			}
			l, err := bridge.NewNovaLookup(context.Background(), tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			vm := eventbus.VM{ID: srv.ID, Kind: eventbus.KindRunning}
			if err := l.Complete(context.Background(), &vm); err != nil {
				t.Fatal(err)
			}
			if len(vm.NICs) != 1 || vm.NICs[0].IP != v4 || vm.NICs[0].IP6 != v6 || vm.Attributes["LB_BACKENDS"] != "web:8080" || vm.Host == "" {
				t.Fatalf("completed VM %+v", vm)
			}
		})
	}

	ctx := context.Background()
	if err := servers.Stop(ctx, compute, srv.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	e.stack.WaitStatus(t, compute, srv.ID, "SHUTOFF")
	testenv.WaitFor(t, 60*time.Second, "A gone after power off", e.gone(t, fqdn, mdns.TypeA))
	if err := servers.Start(ctx, compute, srv.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	e.stack.WaitStatus(t, compute, srv.ID, "ACTIVE")
	testenv.WaitFor(t, 60*time.Second, "A back after power on", e.has(t, fqdn, mdns.TypeA, v4))

	// An interface attach adds the new port's address; its detach removes it.
	iface, err := attachinterfaces.Create(ctx, compute, srv.ID, attachinterfaces.CreateOpts{NetworkID: e.stack.NetworkID}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	var v4b string
	for _, ip := range iface.FixedIPs {
		if !strings.Contains(ip.IPAddress, ":") {
			v4b = ip.IPAddress
		}
	}
	if v4b == "" {
		t.Fatalf("attached interface %+v has no IPv4 address", iface)
	}
	testenv.WaitFor(t, 60*time.Second, "A "+v4b+" of the attached port", e.has(t, fqdn, mdns.TypeA, v4b))
	if err := attachinterfaces.Delete(ctx, compute, srv.ID, iface.PortID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 60*time.Second, "A "+v4b+" gone after the detach", func() bool {
		got := e.bind.Lookup(t, fqdn, mdns.TypeA)
		return !slices.Contains(got, v4b) && slices.Contains(got, v4)
	})

	if err := servers.Delete(ctx, compute, srv.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	e.stack.WaitStatus(t, compute, srv.ID, "DELETED")
	testenv.WaitFor(t, 60*time.Second, "A gone after delete", e.gone(t, fqdn, mdns.TypeA))
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{fqdn, mdns.TypeAAAA}, {fqdn, mdns.TypeTXT}, {rev4, mdns.TypePTR}, {rev6, mdns.TypePTR}} {
		testenv.WaitFor(t, 10*time.Second, q.name+" gone", e.gone(t, q.name, q.qtype))
	}

	out.Reset()
	errOut.Reset()
	if code := cli.Execute(ctx, []string{"tail", "--all", "--no-follow", "--json", "--vm", srv.ID, "--server", e.natsURL, "-c", e.file}, &out, &errOut); code != 0 {
		t.Fatalf("vmglue tail: exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{`"cloud_type":"openstack"`, `"source":"openstack://os"`, `"type":"vm.running"`, `"type":"vm.stopped"`, `"type":"vm.deleted"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("vmglue tail --json has no %s:\n%s", want, out.String())
		}
	}
}

// Nova boots servers while NATS is down (serve stopped): the notifications
// wait in RabbitMQ and every server gets its records once NATS is back.
func TestOpenStackNATSDownWhileBooting(t *testing.T) {
	e := startE2E(t)
	compute := e.stack.Compute(t)
	e.stopServe()
	const n = 5
	type booted struct{ fqdn, v4 string }
	var all []booted
	prefix := "down-" + testenv.RandomName(t)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = e.stack.Create(t, compute, fmt.Sprintf("%s-%d", prefix, i), nil)
	}
	for i, id := range ids {
		v4, _ := serverIPs(t, e.stack.WaitStatus(t, compute, id, "ACTIVE"))
		all = append(all, booted{fmt.Sprintf("%s-%d.cloud.test.", prefix, i), v4})
	}
	e.startServe(t)
	for _, b := range all {
		testenv.WaitFor(t, 90*time.Second, "A of "+b.fqdn, e.has(t, b.fqdn, mdns.TypeA, b.v4))
	}
}

// novaClient publishes onto the stack's RabbitMQ as Nova's notifier does.
type novaClient struct{ ch *amqp.Channel }

func newNovaClient(t *testing.T, url string) *novaClient {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return &novaClient{ch: ch}
}

func (n *novaClient) send(t *testing.T, routingKey string, body []byte) {
	t.Helper()
	if err := n.ch.PublishWithContext(context.Background(), "nova", routingKey, false, false, amqp.Publishing{Body: body}); err != nil {
		t.Fatal(err)
	}
}
