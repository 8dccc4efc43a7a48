package lb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/vmglue/vmglue/internal/testenv"
)

func TestSpecRoundTrip(t *testing.T) {
	tests := []struct {
		in    string
		valid bool
	}{
		{"10.0.0.42:8080", true},
		{"10.0.0.42:8080 weight 10 check inter 2000ms", true},
		{"[2001:db8::1]:443 check", true},
		{"added 10.0.0.42:8080 check", true},
		{"draining since 1700000000.250 10.0.0.42:8080 weight 10", true},
		{"10.0.0.999:80", false},
		{"vm42.cloud.test:80", false},
		{"10.0.0.42", false},
		{"10.0.0.42:0", false},
		{"10.0.0.42:80 weight 1;del server web/x", false},
		{"10.0.0.42:80 weight\n1", false},
		{"draining since soon 10.0.0.42:80", false},
	}
	for _, tc := range tests {
		s, err := parseSpec(tc.in)
		if (err == nil) != tc.valid {
			t.Errorf("parseSpec(%q): %v, want valid=%v", tc.in, err, tc.valid)
			continue
		}
		if err == nil && s.String() != tc.in {
			t.Errorf("round trip %q → %q", tc.in, s.String())
		}
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"10.0.0.42:8080 check", "draining since 1.5 [::1]:80", "added 1.2.3.4:5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		s, err := parseSpec(v)
		if err != nil {
			return
		}
		again, err := parseSpec(s.String())
		if err != nil || again.String() != s.String() {
			t.Fatalf("%q → %q → %v", v, s.String(), err)
		}
	})
}

func TestReplyError(t *testing.T) {
	tests := []struct {
		reply string
		ok    []string
		want  error
	}{
		{"", nil, nil},
		{"New server registered.", []string{"New server registered."}, nil},
		{"No such server.", nil, ErrNoSuchServer},
		{"No such backend.", nil, ErrNoSuchBackend},
		{"Already exists a server with the same name in backend.", nil, ErrExists},
		{"Server still has connections attached to it, cannot remove it.", nil, ErrConnectionsAttached},
		{"Only servers in maintenance mode can be deleted.", nil, ErrNotInMaint},
		{"unknown keyword 'x'.", nil, ErrRejected},
		{"Permission denied", nil, ErrRejected},
	}
	for _, tc := range tests {
		err := replyError("cmd", tc.reply, tc.ok...)
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("reply %q: %v, want %v", tc.reply, err, tc.want)
		}
	}
}

func TestClientUnreachable(t *testing.T) {
	c, err := NewClient("unix:"+filepath.Join(t.TempDir(), "none.sock"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(context.Background(), "show info"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("error %v, want ErrUnreachable", err)
	}
	if _, err := c.Do(context.Background(), "show info;show stat"); err == nil {
		t.Fatal("';' accepted in a command")
	}
	// A server that accepts and never answers: the timeout ends the command.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c, _ = NewClient("tcp:"+l.Addr().String(), 100*time.Millisecond)
	if _, err := c.Do(context.Background(), "show info"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("silent server: %v, want ErrUnreachable", err)
	}
}

// BenchmarkRuntimeAPI measures one-shot commands against a real HAProxy and
// reports the p50 and p99 latency of each.
func BenchmarkRuntimeAPI(b *testing.B) {
	h := testenv.StartHAProxy(b, testenv.HAProxyOptions{TCPAdmin: true,
		Backends: []testenv.HAProxyBackend{{Name: "web"}}})
	for _, sock := range []struct{ name, addr string }{{"unix", h.Admin()}, {"tcp", h.AdminTCP()}} {
		c, err := NewClient(sock.addr, 0)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		b.Run(sock.name+"/show_servers_state", func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := serversState(ctx, c); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			report(b, lat)
		})
		b.Run(sock.name+"/add_enable_disable_del", func(b *testing.B) {
			lat := make([]time.Duration, 0, 4*b.N)
			for i := 0; i < b.N; i++ {
				name := fmt.Sprintf("web/bench%d", i)
				for _, cmd := range []struct{ cmd, ok string }{{"add server " + name + " 127.0.0.1:9", "New server registered."},
					{"enable server " + name, ""}, {"disable server " + name, ""}, {"del server " + name, "Server deleted."}} {
					t0 := time.Now()
					var err error
					if cmd.ok == "" {
						err = c.Exec(ctx, cmd.cmd)
					} else {
						err = c.Exec(ctx, cmd.cmd, cmd.ok)
					}
					if err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
				}
			}
			report(b, lat)
		})
	}
}

func report(b *testing.B, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(p(0.5), "p50-µs/cmd")
	b.ReportMetric(p(0.99), "p99-µs/cmd")
}
