package eventbus

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A placement refused because a peer is offline is retried for up to
// PeerWait: a cluster that has just elected its meta leader may not yet
// have heard from every peer (TestFaults' cluster failed so once in CI,
// 0.4 s after the election). Any other refusal is explained at once.
// The errors are the server's own (code and description as nats-server
// 2.15 sends them); the timing that produces the first cannot be forced
// on a real cluster, hence a stand-in asset.
func TestProvisionWaitsForOfflinePeer(t *testing.T) {
	offline := &jetstream.APIError{Code: 500, ErrorCode: errCodeNoPeers, Description: "no suitable peers for placement, peer offline"}
	tooFew := &jetstream.APIError{Code: 500, ErrorCode: errCodeNoPeers, Description: "no suitable peers for placement"}
	old := PeerWait
	PeerWait = time.Second
	t.Cleanup(func() { PeerWait = old })
	for _, tt := range []struct {
		name    string
		errs    []error // what each call returns; nil after the last
		calls   int     // at least this many (exactly, unless retried until PeerWait)
		exactly bool
		err     string
	}{
		{name: "offline twice then placed", errs: []error{offline, offline}, calls: 3, exactly: true},
		{name: "too few servers: at once", errs: []error{tooFew, nil}, calls: 1, exactly: true,
			err: `nats.stream.replicas cannot be met: 3 replicas wanted for stream S, but the NATS cluster "" cannot place them (no suitable peers for placement): it has fewer than 3 JetStream servers up; set nats.stream.replicas to at most their number, or add servers`},
		{name: "offline for longer than PeerWait", errs: []error{offline, offline, offline, offline, offline, offline, offline, offline, offline, offline}, calls: 3,
			err: `nats.stream.replicas cannot be met: 3 replicas wanted for stream S, but the NATS cluster "" cannot place them (no suitable peers for placement, peer offline): it has fewer than 3 JetStream servers up; set nats.stream.replicas to at most their number, or add servers`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			a := asset{stream: "S", apply: func(context.Context, int) error {
				calls++
				if calls <= len(tt.errs) {
					return tt.errs[calls-1]
				}
				return nil
			}}
			p := &replicaPlan{want: 3}
			err := p.apply(context.Background(), a, 3)
			if err != nil {
				err = p.explain(a.stream, 3, err)
			}
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("provision: %v", err)
			case tt.err != "" && (err == nil || err.Error() != tt.err || !errors.Is(err, ErrReplicas)):
				t.Fatalf("provision: %v, want %s", err, tt.err)
			}
			if calls < tt.calls || (tt.exactly && calls != tt.calls) {
				t.Errorf("%d calls, want %d", calls, tt.calls)
			}
		})
	}
}
