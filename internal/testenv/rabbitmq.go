package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// RabbitMQ is a private RabbitMQ node on loopback, with its own epmd,
// cookie and data in a temporary directory; the system's node and epmd
// are never touched.
type RabbitMQ struct {
	Dir  string
	Port int
	URL  string // amqp://guest:guest@127.0.0.1:<port>/
	// TLSURL is amqps://127.0.0.1:<port>/ with RabbitMQOptions.TLS: the
	// server's certificate is signed by that CA, and the client must show
	// one it signed too.
	TLSURL string
	env    []string
	epmd   *exec.Cmd
	node   *exec.Cmd
	done   chan struct{}
}

const rabbitServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"

// RabbitMQOptions configure StartRabbitMQ.
type RabbitMQOptions struct {
	// TLS adds an amqps listener with a server certificate of this CA,
	// which requires a client certificate of it.
	TLS *TestCA
}

// StartRabbitMQ starts a node that stops when the test ends (about 5-10 s,
// more on a loaded machine).
func StartRabbitMQ(t testing.TB, o RabbitMQOptions) *RabbitMQ {
	t.Helper()
	for _, p := range []string{rabbitServer, "/usr/bin/epmd"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s not found: run `make test-deps` (scripts/openstack-stack.sh install)", p)
		}
	}
	dir := t.TempDir()
	r := &RabbitMQ{Dir: dir, Port: FreePort(t)}
	r.URL = fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", r.Port)
	epmdPort, dist := FreePort(t), FreePort(t)
	conf := fmt.Sprintf("listeners.tcp.1 = 127.0.0.1:%d\nloopback_users.guest = true\nvm_memory_high_watermark.absolute = 256MiB\ndisk_free_limit.absolute = 50MB\nlog.file.level = warning\n", r.Port)
	if o.TLS != nil {
		port := FreePort(t)
		cert, key := o.TLS.Issue(t, "rabbitmq", true)
		conf += fmt.Sprintf("listeners.ssl.default = 127.0.0.1:%d\nssl_options.cacertfile = %s\nssl_options.certfile = %s\n"+
			"ssl_options.keyfile = %s\nssl_options.verify = verify_peer\nssl_options.fail_if_no_peer_cert = true\n",
			port, o.TLS.CAFile, cert, key)
		r.TLSURL = fmt.Sprintf("amqps://127.0.0.1:%d/", port)
	}
	if err := os.WriteFile(filepath.Join(dir, "rabbitmq.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "enabled_plugins"), []byte("[].\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.env = append(os.Environ(), "HOME="+dir, "RABBITMQ_NODENAME=vmgluetest"+strconv.Itoa(r.Port)+"@localhost",
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1", "RABBITMQ_NODE_PORT="+strconv.Itoa(r.Port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(dist), "ERL_EPMD_PORT="+strconv.Itoa(epmdPort), "ERL_EPMD_ADDRESS=127.0.0.1",
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"), "RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq"), "RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "rabbit.pid"), "RABBITMQ_USE_LONGNAME=false")
	r.epmd = exec.Command("/usr/bin/epmd", "-port", strconv.Itoa(epmdPort), "-address", "127.0.0.1")
	r.epmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.epmd.Start(); err != nil {
		t.Fatalf("start epmd: %v", err)
	}
	t.Cleanup(func() {
		r.Stop()
		_ = syscall.Kill(-r.epmd.Process.Pid, syscall.SIGKILL)
		_ = r.epmd.Wait()
	})
	r.Start(t)
	return r
}

// Start starts the node again after Stop, on the same port with the same
// data: durable queues and persistent messages survive.
func (r *RabbitMQ) Start(t testing.TB) {
	t.Helper()
	if r.node != nil {
		t.Fatal("rabbitmq: already running")
	}
	log, err := os.OpenFile(filepath.Join(r.Dir, "server.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(rabbitServer)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = r.env, r.Dir, log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rabbitmq: %v", err)
	}
	r.node, r.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(r.done)
	deadline := time.Now().Add(90 * time.Second)
	for {
		if c, err := amqp.Dial(r.URL); err == nil {
			c.Close()
			return
		}
		select {
		case <-r.done:
			r.node = nil
			out, _ := os.ReadFile(filepath.Join(r.Dir, "server.out"))
			t.Fatalf("rabbitmq exited during startup:\n%s", tail(out))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.Stop()
			t.Fatal("rabbitmq not accepting connections after 90s")
		}
	}
}

// Stop stops the node's process group with SIGTERM (SIGKILL after 20 s).
func (r *RabbitMQ) Stop() {
	if r.node == nil {
		return
	}
	_ = syscall.Kill(-r.node.Process.Pid, syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-r.node.Process.Pid, syscall.SIGKILL)
		<-r.done
	}
	r.node = nil
}

// DeleteQueue removes a test's durable queue from a shared RabbitMQ (the
// test OpenStack's); a failure fails the test.
func DeleteQueue(t testing.TB, url, queue string) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Errorf("delete queue %s: %v", queue, err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err == nil {
		_, err = ch.QueueDelete(queue, false, false, false)
	}
	if err != nil {
		t.Errorf("delete queue %s: %v", queue, err)
	}
}
