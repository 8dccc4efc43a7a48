package eventbus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrReplicas is returned by Provision when the NATS server or cluster
// cannot hold the configured replicas.
var ErrReplicas = errors.New("nats.stream.replicas cannot be met")

// JetStream API error codes of placement (nats-server's errors.json).
const (
	errCodeNoPeers               jetstream.ErrorCode = 10005 // "no suitable peers for placement"
	errCodeInsufficientResources jetstream.ErrorCode = 10023 // "insufficient resources"
	errCodeReplicasNotSupported  jetstream.ErrorCode = 10074 // "replicas > 1 not supported in non-clustered mode"
)

// Replicas is what Provision found about the replicas of vmglue's
// streams and buckets (KV buckets by their stream, KV_<bucket>), for serve
// to log.
type Replicas struct {
	// Cluster is the name of the NATS cluster, "" for a single server.
	// (How many servers it has, the normal roles cannot ask: the meta
	// group's peers are for the system account.)
	Cluster string
	// Scaled lists the streams Provision raised to the configured
	// replicas ("KV_VMGLUE_VMS 1→3"). JetStream keeps their messages.
	Scaled []string
	// Warning is one line for the operator, "" when there is nothing to say.
	Warning string
}

// asset is one stream or bucket: its stream's name and how to create or
// update it with a replica count.
type asset struct {
	stream string
	apply  func(ctx context.Context, replicas int) error
}

// replicaPlan gathers, asset by asset, what Provision did with replicas.
type replicaPlan struct {
	want   int
	r      Replicas
	single []string // on a cluster with one replica
	kept   []string // have more replicas than wanted: never lowered
	above  int      // the highest of those
}

func newReplicaPlan(js jetstream.JetStream, want int) *replicaPlan {
	p := &replicaPlan{want: want}
	if nc := js.Conn(); nc != nil {
		p.r.Cluster = nc.ConnectedClusterName()
	}
	return p
}

// provision creates or updates a with the configured replicas, or with
// more when it already has more: vmglue raises replicas (JetStream moves
// the data) but never lowers them, so that one serve started with a
// default config cannot take the redundancy of a cluster away.
func (p *replicaPlan) provision(ctx context.Context, js jetstream.JetStream, a asset) error {
	have := 0
	st, err := js.Stream(ctx, a.stream)
	switch {
	case err == nil:
		have = st.CachedInfo().Config.Replicas
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("look up stream %s: %w", a.stream, err)
	}
	use := max(p.want, have)
	if err := p.apply(ctx, a, use); err != nil {
		return p.explain(a.stream, use, err)
	}
	switch {
	case have > p.want:
		p.kept = append(p.kept, a.stream)
		p.above = max(p.above, have)
	case have > 0 && have < p.want:
		p.r.Scaled = append(p.r.Scaled, fmt.Sprintf("%s %d→%d", a.stream, have, p.want))
	}
	if use == 1 && p.r.Cluster != "" {
		p.single = append(p.single, a.stream)
	}
	return nil
}

// PeerWait bounds how long Provision retries a placement the cluster
// refused for a peer it has not heard from yet ("peer offline"): a
// cluster that has just started, or a node that is restarting. A
// cluster with too few servers is refused without that reason, at once.
var PeerWait = 30 * time.Second

// apply runs a.apply, retrying while the cluster cannot place the
// replicas only because a peer is offline, for up to PeerWait.
func (p *replicaPlan) apply(ctx context.Context, a asset, replicas int) error {
	deadline := time.Now().Add(PeerWait)
	delay := 100 * time.Millisecond
	for {
		err := a.apply(ctx, replicas)
		if err == nil || !peerOffline(err) || time.Now().Add(delay).After(deadline) {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// peerOffline reports whether err is a placement refused because a
// known peer is offline (the server's reason says "peer offline").
func peerOffline(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && api.ErrorCode == errCodeNoPeers && strings.Contains(api.Description, "peer offline")
}

// explain turns the server's placement errors into one that says what
// the operator asked for and what the bus has.
func (p *replicaPlan) explain(stream string, replicas int, err error) error {
	var api *jetstream.APIError
	if !errors.As(err, &api) {
		return fmt.Errorf("provision stream %s: %w", stream, err)
	}
	switch api.ErrorCode {
	case errCodeReplicasNotSupported:
		return fmt.Errorf("%w: %d replicas wanted for stream %s, but the NATS server is not clustered (it holds one copy): set nats.stream.replicas: 1, or run a NATS cluster (deploy/nats/nats-cluster.conf)",
			ErrReplicas, replicas, stream)
	case errCodeNoPeers, errCodeInsufficientResources:
		return fmt.Errorf("%w: %d replicas wanted for stream %s, but the NATS cluster %q cannot place them (%s): it has fewer than %d JetStream servers up; set nats.stream.replicas to at most their number, or add servers",
			ErrReplicas, replicas, stream, p.r.Cluster, api.Description, replicas)
	}
	return fmt.Errorf("provision stream %s: %w", stream, err)
}

// report finishes the plan: the one warning line, if any.
func (p *replicaPlan) report() Replicas {
	var w []string
	if len(p.single) > 0 {
		w = append(w, fmt.Sprintf("one replica on the NATS cluster %q for %s: each is unavailable, and lost with its store, when the server holding it goes; set nats.stream.replicas: 3 (on three or more servers)",
			p.r.Cluster, strings.Join(p.single, ", ")))
	}
	if len(p.kept) > 0 {
		w = append(w, fmt.Sprintf("%s have more replicas than nats.stream.replicas (%d) and are kept so (vmglue never lowers replicas): set nats.stream.replicas: %d, or lower each with `nats stream edit <stream> --replicas %d`",
			strings.Join(p.kept, ", "), p.want, p.above, p.want))
	}
	p.r.Warning = strings.Join(w, "; ")
	return p.r
}
