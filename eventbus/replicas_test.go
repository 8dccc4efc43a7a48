package eventbus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
)

// On a single nats-server (not clustered), replicas above one are an
// error that says so, and one replica is nothing to warn about. The
// three-node outcomes are tested in deploy/nats (TestClusterReplicaCheck).
func TestProvisionReplicasSingleServer(t *testing.T) {
	s := natstest.Start(t) // provisioned with one replica
	_, js := natstest.Connect(t, s.URL)
	for _, tt := range []struct {
		name string
		want int
		err  string
	}{
		{name: "one replica", want: 1},
		{name: "three replicas", want: 3,
			err: "nats.stream.replicas cannot be met: 3 replicas wanted for stream VMGLUE_EVENTS, but the NATS server is not clustered (it holds one copy): set nats.stream.replicas: 1, or run a NATS cluster (deploy/nats/nats-cluster.conf)"},
		{name: "five replicas", want: 5,
			err: "nats.stream.replicas cannot be met: 5 replicas wanted for stream VMGLUE_EVENTS, but the NATS server is not clustered (it holds one copy): set nats.stream.replicas: 1, or run a NATS cluster (deploy/nats/nats-cluster.conf)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			r, err := eventbus.ProvisionReplicas(ctx, js, eventbus.ProvisionOptions{Replicas: tt.want})
			if tt.err != "" {
				if err == nil || err.Error() != tt.err || !errors.Is(err, eventbus.ErrReplicas) {
					t.Fatalf("error\n got %v\nwant %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Cluster != "" || r.Warning != "" || len(r.Scaled) != 0 {
				t.Fatalf("%+v, want no cluster, nothing to say", r)
			}
		})
	}
}
