package listen_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/delivery"
	"github.com/vmglue/vmglue/hooks/opennebula/listen"
	"github.com/vmglue/vmglue/hooks/spool"
)

// corpusDocs returns the VM documents (not the pools) of the shared corpus:
// $VMGLUE_CORPUS/opennebula, else ../shared/corpus beside the checkout.
func corpusDocs(t testing.TB) map[string][]byte {
	t.Helper()
	root := os.Getenv("VMGLUE_CORPUS")
	if root == "" {
		root = filepath.Join("..", "..", "..", "..", "shared", "corpus")
	}
	files, _ := filepath.Glob(filepath.Join(root, "opennebula", "vm-*.xml"))
	if len(files) == 0 {
		t.Fatalf("no OpenNebula VM documents in %s/opennebula: set VMGLUE_CORPUS to the shared corpus", root)
	}
	docs := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs[filepath.Base(f)] = b
	}
	return docs
}

var (
	firstID  = regexp.MustCompile(`<ID>\s*\d+\s*</ID>`)
	lastPoll = regexp.MustCompile(`<LAST_POLL>\s*\d+\s*</LAST_POLL>`)
)

// variant is doc as VM id, polled at poll: a distinct snapshot (and event).
func variant(doc []byte, id int, poll int64) []byte {
	n := 0
	doc = firstID.ReplaceAllFunc(doc, func(m []byte) []byte {
		if n++; n > 1 {
			return m
		}
		return fmt.Appendf(nil, "<ID>%d</ID>", id)
	})
	return lastPoll.ReplaceAll(doc, fmt.Appendf(nil, "<LAST_POLL>%d</LAST_POLL>", poll))
}

// running is a listener under test.
type running struct {
	metrics *listen.Metrics
	cancel  context.CancelFunc
	done    chan struct{} // closed when Run returned, with err set
	err     error
}

// stop cancels the listener and waits for Run to return.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Fatalf("listener: %v", r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("listener did not stop within 20s")
	}
}

// startListener runs a listener on endpoint that publishes through p.
func startListener(t testing.TB, endpoint string, p listen.Publisher, sw listen.Sweeper) *running {
	t.Helper()
	return startListenerSec(t, endpoint, p, sw, eventbus.Secrets{})
}

// startListenerSec is startListener with a secret policy.
func startListenerSec(t testing.TB, endpoint string, p listen.Publisher, sw listen.Sweeper, sec eventbus.Secrets) *running {
	t.Helper()
	cfg := listen.Config{Endpoint: endpoint, SpoolDir: t.TempDir(), SweepInterval: -1}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{metrics: listen.NewMetrics(nil), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = listen.Run(ctx, listen.Options{Config: cfg, Publisher: p, Sweeper: sw, Metrics: r.metrics, Secrets: sec,
			Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)})
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// openPublisher opens the shared resident delivery to url, spooling in dir.
func openPublisher(t testing.TB, url, dir string) *delivery.Publisher {
	t.Helper()
	p, err := delivery.Open(delivery.Options{Conn: eventbus.ConnOptions{URL: url}, SpoolDir: dir,
		Timeout: 2 * time.Second, FlushInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; p.Close() })
	return p
}

// waitFor polls cond until it holds, failing the test after 30s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func spooled(t testing.TB, dir string) int {
	t.Helper()
	es, err := spool.New(dir).List()
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// cloud is what the test's OpenNebula holds: the newest document of each
// VM, as the XML-RPC API would list it.
type cloud struct {
	mu   sync.Mutex
	docs map[int][]byte
}

func (c *cloud) set(id int, doc []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.docs == nil {
		c.docs = map[int][]byte{}
	}
	c.docs[id] = bytes.Clone(doc)
}

// sweeper is a sweep of the test's cloud: it publishes the event of every
// VM the cloud holds, as the OpenNebula sweep does for a VM that is new or
// changed (same document, same event id as the stream's).
type sweeper struct {
	cloud *cloud
	pub   listen.Publisher
	mu    sync.Mutex
	calls int
}

func (s *sweeper) Sweep(ctx context.Context) error {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	s.cloud.mu.Lock()
	docs := make([][]byte, 0, len(s.cloud.docs))
	for _, d := range s.cloud.docs {
		docs = append(docs, d)
	}
	s.cloud.mu.Unlock()
	for _, d := range docs {
		ev, err := eventOf(d)
		if err != nil {
			return err
		}
		if r := s.pub.Publish(ctx, &ev); !r.Outcome.Safe() {
			return fmt.Errorf("sweep publish %s: %v", ev.ID, r.Err)
		}
	}
	return nil
}

func (s *sweeper) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}
