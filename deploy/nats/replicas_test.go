package natsconf_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natstest"
	"github.com/vmglue/vmglue/internal/serve"
)

// all is the provisioned streams' list as the messages name them.
var all = strings.Join(streams, ", ")

// The messages of the replica check on a three-node cluster.
var (
	singleWarning = `one replica on the NATS cluster "vmglue" for ` + all + `: each is unavailable, and lost with its store, when the server holding it goes; set nats.stream.replicas: 3 (on three or more servers)`
	keptWarning   = all + " have more replicas than nats.stream.replicas (1) and are kept so (vmglue never lowers replicas): set nats.stream.replicas: 3, or lower each with `nats stream edit <stream> --replicas 1`"
	r5Error       = `nats.stream.replicas cannot be met: 5 replicas wanted for stream VMGLUE_EVENTS, but the NATS cluster "vmglue" cannot place them (no suitable peers for placement): it has fewer than 5 JetStream servers up; set nats.stream.replicas to at most their number, or add servers`
)

// On a real three-node cluster, vmglue's replica check on start: each
// outcome with its exact message. Each case starts from no stream, or from
// every stream with the replicas of before and one event stored (which
// stays), and provisions as role serve with the replicas of want.
func TestClusterReplicaCheck(t *testing.T) {
	c := startCluster(t)
	_, js := natstest.ConnectRole(t, c.urls(), eventbus.RoleServe, c.pw[eventbus.RoleServe], c.tls())
	var raised []string
	for _, s := range streams {
		raised = append(raised, s+" 1→3")
	}
	for _, tt := range []struct {
		name         string
		before, want int // before 0: no stream yet
		scaled       []string
		warning, err string
		after        int // the streams' replicas afterwards
	}{
		{name: "R3 on three nodes", want: 3, after: 3},
		{name: "R1 configured on a cluster", want: 1, after: 1,
			warning: singleWarning},
		{name: "existing R1 kept R1 is a warning", before: 1, want: 1, after: 1,
			warning: singleWarning},
		{name: "existing R1 raised to R3", before: 1, want: 3, after: 3, scaled: raised},
		{name: "existing R3 never lowered", before: 3, want: 1, after: 3,
			warning: keptWarning},
		{name: "R5 on three nodes", want: 5,
			err: r5Error},
		{name: "existing R3 to R5", before: 3, want: 5, after: 3,
			err: r5Error},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			deleteStreams(ctx, t, c, js)
			if tt.before > 0 {
				if _, err := eventbus.ProvisionReplicas(ctx, js, eventbus.ProvisionOptions{Replicas: tt.before}); err != nil {
					t.Fatalf("provision R%d before: %v", tt.before, err)
				}
				awaitReplicas(t, js, tt.before, streams...)
				if _, err := eventbus.Publish(ctx, js, running(t, "9")); err != nil {
					t.Fatal(err)
				}
			}
			r, err := eventbus.ProvisionReplicas(ctx, js, eventbus.ProvisionOptions{Replicas: tt.want})
			switch {
			case tt.err != "":
				if err == nil || err.Error() != tt.err || !errors.Is(err, eventbus.ErrReplicas) {
					t.Fatalf("error\n got %v\nwant %s", err, tt.err)
				}
			case err != nil:
				t.Fatal(err)
			default:
				if r.Cluster != "vmglue" {
					t.Errorf("cluster %q, want vmglue", r.Cluster)
				}
				if r.Warning != tt.warning {
					t.Errorf("warning\n got %s\nwant %s", r.Warning, tt.warning)
				}
				if !slices.Equal(r.Scaled, tt.scaled) {
					t.Errorf("scaled %q, want %q", r.Scaled, tt.scaled)
				}
			}
			if tt.after > 0 {
				awaitReplicas(t, js, tt.after, streams...)
			}
			if tt.before > 0 { // the event stored before is still there
				st, err := js.Stream(ctx, eventbus.StreamEvents)
				if err != nil || st.CachedInfo().State.Msgs != 1 {
					t.Fatalf("%s after: %v %v, want the 1 event of before", eventbus.StreamEvents, st, err)
				}
			}
		})
	}

	// Through vmglue serve (the streams are R3 now): replicas the cluster
	// cannot meet stop serve with that error; replicas 1 configured is
	// one warning line, and serve runs.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := serve.Run(ctx, serve.Options{Config: loadConfig(t, serveConfig(t, c.urls(), c.caFile(), 5, ""))}, zerolog.Nop()); err == nil || err.Error() != r5Error {
		t.Errorf("serve with replicas 5 on three nodes: %v, want %s", err, r5Error)
	}
	logs := runServe(t, c.urls(), c.caFile(), 1, "")
	if w := warnings(t, logs); len(w) != 1 || w[0] != keptWarning {
		t.Errorf("serve's warnings: %q, want one: %s", w, keptWarning)
	}
	awaitReplicas(t, js, 3, streams...)
}

// deleteStreams removes every stream vmglue provisions, for a case that
// starts from nothing, and waits until every node removed its store (a
// stream created again while a node still removes the old one's fails
// with "error creating store for stream").
func deleteStreams(ctx context.Context, t *testing.T, c *cluster, js jetstream.JetStream) {
	t.Helper()
	for _, s := range streams {
		var dirs []string
		held := false
		for _, d := range c.dirs {
			dir := filepath.Join(d, "jetstream", server.DEFAULT_GLOBAL_ACCOUNT, "streams", s)
			_, err := os.Stat(dir)
			held = held || err == nil
			dirs = append(dirs, dir)
		}
		err := js.DeleteStream(ctx, s)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			continue
		case err != nil:
			t.Fatal(fmt.Errorf("delete stream %s: %w", s, err))
		case !held:
			t.Fatalf("stream %s is in none of %q: where do the nodes keep it?", s, dirs)
		}
		for _, dir := range dirs {
			await(t, 10*time.Second, "removed "+dir, func() error {
				if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("stat: %v", err)
				}
				return nil
			})
		}
	}
}
