package natsconf_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/testenv"
)

// exchange speaks the NATS protocol by hand to addr, as a client or a
// server joining the cluster would. A client port sends its INFO in plain
// text, then the client starts TLS; a route port that demands TLS starts
// with the handshake (tlsFirst) and sends its INFO inside. conf nil stays
// in plain text. It sends CONNECT connect and a PING and returns the INFO
// and the first reply line (a connection the server closes is an error).
func exchange(t *testing.T, addr string, conf *tls.Config, tlsFirst bool, connect string) (info, reply string, err error) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var conn net.Conn = raw
	r := bufio.NewReader(conn)
	if !tlsFirst {
		if info, err = r.ReadString('\n'); err != nil || !strings.HasPrefix(info, "INFO ") {
			t.Fatalf("%s greeting %q: %v", addr, info, err)
		}
	}
	if conf != nil {
		tc := tls.Client(raw, conf)
		if err := tc.Handshake(); err != nil {
			return info, "", err
		}
		conn, r = tc, bufio.NewReader(tc)
		if tlsFirst {
			if info, err = r.ReadString('\n'); err != nil {
				return info, "", err
			}
		}
	}
	if _, err := fmt.Fprintf(conn, "CONNECT %s\r\nPING\r\n", connect); err != nil {
		return info, "", err
	}
	reply, err = r.ReadString('\n')
	return info, reply, err
}

// tlsAs is a TLS client configuration that trusts the cluster's CA and
// presents cert (none when certFile is "").
func tlsAs(t *testing.T, c *cluster, certFile, keyFile string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(c.caFile())
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	conf.RootCAs.AppendCertsFromPEM(pem)
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf
}

// A server that does not know the route password, or has no certificate
// from the nodes' CA, cannot route into the cluster (whose routes would
// pass every role's permissions), and the route port never takes the
// password in plain text: it starts with the TLS handshake and drops a
// CONNECT that is not inside it.
func TestClusterRouteNeedsPasswordAndCertificate(t *testing.T) {
	c := startCluster(t)
	cert, key := c.ca.Issue(t, "intruder-with-a-certificate", true)
	otherCert, otherKey := testenv.NewTestCA(t).Issue(t, "intruder-other-ca", true)
	routes := make([]int, len(c.nodes))
	for i, n := range c.nodes {
		routes[i] = n.NumRoutes()
	}
	withPassword := fmt.Sprintf(`{"verbose":false,"pedantic":false,"user":"route","pass":%q,"name":"intruder"}`, c.pw["route"])
	for _, tt := range []struct {
		name    string
		conf    *tls.Config // nil: plain text
		connect string
		want    string // in the reply, or the error that ended the exchange
	}{
		{"certificate, no credentials", tlsAs(t, c, cert, key), `{"verbose":false,"pedantic":false,"name":"intruder"}`, "Authorization Violation"},
		{"certificate, wrong password", tlsAs(t, c, cert, key), `{"verbose":false,"pedantic":false,"user":"route","pass":"not-the-password","name":"intruder"}`, "Authorization Violation"},
		{"password in plain text", nil, withPassword, "EOF"},
		{"password, certificate of another CA", tlsAs(t, c, otherCert, otherKey), withPassword, "tls: unknown certificate authority"},
		{"password, no certificate", tlsAs(t, c, "", ""), withPassword, "tls: certificate required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, reply, err := exchange(t, c.nodes[0].ClusterAddr().String(), tt.conf, true, tt.connect)
			if got := fmt.Sprint(reply, err); strings.Contains(reply, "PONG") || !strings.Contains(got, tt.want) {
				t.Fatalf("route CONNECT: %q %v, want %q", reply, err, tt.want)
			}
		})
	}
	for i, n := range c.nodes {
		if got := n.NumRoutes(); got != routes[i] {
			t.Errorf("%s has %d route connections, %d before the intruders", n.Name(), got, routes[i])
		}
	}
}

// Clients of the shipped cluster config: TLS only. A role client with the
// nodes' CA connects over TLS; without it the certificate is refused
// (nats.go upgrades to TLS before sending the password, as the server
// asks); a CONNECT with the password in plain text is dropped.
func TestClusterClientsNeedTLS(t *testing.T) {
	c := startCluster(t)
	url, pw := c.nodes[0].ClientURL(), c.pw[eventbus.RoleHook]
	for _, tt := range []struct {
		name string
		opts []nats.Option
		err  string
	}{
		{"with the CA", []nats.Option{c.tls()}, ""},
		{"without the CA", nil, "certificate signed by unknown authority"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := nats.Connect(url, append(tt.opts, nats.UserInfo(eventbus.RoleHook, pw), nats.NoReconnect(), nats.Name(tt.name))...)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("connect: %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer nc.Close()
			cz, err := c.nodes[0].Connz(&server.ConnzOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var version string
			for _, ci := range cz.Conns {
				if ci.Name == tt.name {
					version = ci.TLSVersion
				}
			}
			if version == "" {
				t.Errorf("the server sees no TLS connection %q: %+v", tt.name, cz.Conns)
			}
		})
	}
	t.Run("password in plain text", func(t *testing.T) {
		info, reply, err := exchange(t, c.nodes[0].Addr().String(), nil, false,
			fmt.Sprintf(`{"verbose":false,"pedantic":false,"user":%q,"pass":%q}`, eventbus.RoleHook, pw))
		if !strings.Contains(info, `"tls_required":true`) {
			t.Errorf("client port INFO %q does not ask for TLS", info)
		}
		if err == nil || strings.Contains(reply, "PONG") {
			t.Fatalf("plain-text CONNECT: %q %v, want the connection closed", reply, err)
		}
	})
}
