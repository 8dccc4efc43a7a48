package testenv

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Forwarder is a TCP forwarder on a loopback port in front of a real server
// (the Puppet CA), to take the server away from a client and give it back:
// while refusing it resets every connection at once (the client sees
// "connection reset by peer", as from a server restarting); while
// forwarding it copies bytes both ways, TLS included, untouched.
type Forwarder struct {
	Addr    string // 127.0.0.1:port
	target  string
	ln      net.Listener
	forward atomic.Bool
	refused atomic.Int64
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]bool // open, closed by the cleanup
}

// NewForwarder starts a forwarder to target that refuses until Forward.
// It stops when the test ends.
func NewForwarder(t testing.TB, target string) *Forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("forwarder: %v", err)
	}
	f := &Forwarder{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]bool{}}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.conns = nil
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

// Forward makes new connections reach the target.
func (f *Forwarder) Forward() { f.forward.Store(true) }

// Refuse makes new connections fail and closes the forwarded ones (a
// client's idle keep-alive connections too): the server is gone.
func (f *Forwarder) Refuse() {
	f.forward.Store(false)
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
}

// Refused is how many connections were reset so far.
func (f *Forwarder) Refused() int64 { return f.refused.Load() }

func (f *Forwarder) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		if !f.forward.Load() {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // close with RST
			}
			c.Close()
			f.refused.Add(1)
			continue
		}
		f.wg.Add(1)
		go f.pipe(c)
	}
}

// pipe copies between c and a new connection to the target until either
// side closes.
func (f *Forwarder) pipe(c net.Conn) {
	defer f.wg.Done()
	up, err := net.Dial("tcp", f.target)
	if err != nil {
		c.Close()
		return
	}
	if !f.track(c, up) {
		return
	}
	defer f.untrack(c, up)
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(up, c)
	go cp(c, up)
	<-done
	<-done
}

// track records open connections; false (both closed) once the
// forwarder is closing.
func (f *Forwarder) track(cs ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		f.conns[c] = true
	}
	return true
}

// untrack closes and forgets connections.
func (f *Forwarder) untrack(cs ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(f.conns, c)
	}
}
