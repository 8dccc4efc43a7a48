// Package serve is `vmglue serve`: the optional embedded nats-server, the
// provisioning of streams and buckets, the workers, and the HTTP endpoints
// /metrics, /healthz and the operator's page /ui/ (internal/web; on the
// metrics listener, or on web.listen).
package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/eventbus/natsserver"
	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/worker"
)

// Options are what the command line adds to the config file.
type Options struct {
	Config *config.Config
	// Ready, when set, is called once everything is up (tests, sd_notify).
	Ready func(Info)
}

// Info describes a running serve.
type Info struct {
	NATSURL     string // where clients connect (embedded or external)
	MetricsAddr string // "" when metrics are off
	// Installation is the installation identity the workers mark their
	// objects with (config installation, or the one kept on the bus).
	Installation string
	// DataDir is the embedded server's data directory when its clients
	// need the per-role credentials in it (eventbus.CredentialPath), else "".
	DataDir string
	// WebURL is the operator's page ("http://host:port/ui/"), "" when off.
	WebURL string
}

// Run serves until ctx is done, then shuts down gracefully.
func Run(ctx context.Context, o Options, log zerolog.Logger) error {
	cfg := o.Config
	co, err := cfg.ConnOptions("vmglue serve", cfg.NATS.URL)
	if err != nil {
		return err
	}
	var ns *server.Server
	if co.URL == "" {
		ns, err = startEmbedded(cfg, &co, log)
		if err != nil {
			return err
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	}
	url := co.URL
	nc, err := eventbus.Connect(co, true)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	replicas, err := eventbus.ProvisionReplicas(pctx, js, cfg.NATS.Stream)
	cancel()
	if err != nil {
		return err
	}
	logReplicas(log, url, cfg.NATS.Stream.Replicas, replicas)
	pctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	installation, err := eventbus.Installation(pctx, js, cfg.Installation)
	cancel()
	if err != nil {
		return err
	}
	log.Info().Str("installation", installation).Msg("installation identity")

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if len(cfg.Metrics.SpoolDirs) > 0 {
		reg.MustRegister(spoolCollector(cfg.Metrics.SpoolDirs))
	}
	runners, closeWorkers, err := newRunners(cfg, js, installation, reg, log)
	if err != nil {
		return err
	}
	defer closeWorkers()
	if cfg.Runtime.CompactInterval > 0 {
		runners = append(runners, runFunc(func(ctx context.Context) error {
			compactLoop(ctx, js, cfg.Runtime, log)
			return nil
		}))
	}

	sweeper, closeSweep, err := sweepRunner(ctx, cfg, js, reg, log)
	if err != nil {
		return err
	}
	defer closeSweep()
	if sweeper != nil {
		runners = append(runners, sweeper)
	}

	info := Info{NATSURL: url, Installation: installation}
	if ns != nil && cfg.NATS.Embedded.Auth == config.AuthRoles {
		info.DataDir = cfg.NATS.Embedded.DataDir
	}
	ui, err := webHandler(cfg, js, log)
	if err != nil {
		return err
	}
	var srv, webSrv *http.Server
	if ui != nil && cfg.Web.Listen != "" {
		var addr string
		if webSrv, addr, err = serveWeb(cfg.Web.Listen, ui, log); err != nil {
			return err
		}
		info.WebURL = "http://" + addr + uiPath
		ui = nil
	}
	if cfg.Metrics.Listen != "" {
		l, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics listen %s: %w", cfg.Metrics.Listen, err)
		}
		info.MetricsAddr = l.Addr().String()
		if ui != nil && !loopback(l.Addr()) {
			// Metrics are often opened to a Prometheus on another machine;
			// the VM inventory is not: the page then needs its own
			// web.listen.
			log.Warn().Str("listen", info.MetricsAddr).Msg("operator's page not served on a metrics listener off loopback: set web.listen to serve it")
			ui = nil
		}
		if ui != nil {
			info.WebURL = "http://" + info.MetricsAddr + uiPath
		}
		srv = &http.Server{Handler: handler(reg, nc, js, ui), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error().Err(err).Msg("metrics server")
			}
		}()
		log.Info().Str("listen", info.MetricsAddr).Msg("serving /metrics and /healthz")
	}

	// The workers run in one group: the first one that fails stops serve
	// (and the others), instead of serving on without it.
	g, gctx := errgroup.WithContext(ctx)
	for _, r := range runners {
		g.Go(func() error {
			if err := r.Run(gctx); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		})
	}
	g.Go(func() error {
		if awaitStarted(gctx, runners) {
			if o.Ready != nil {
				o.Ready(info)
			}
			log.Info().Int("workers", len(cfg.Workers.Names())).Msg("vmglue serve ready")
		}
		<-gctx.Done()
		log.Info().Msg("shutting down")
		return nil
	})
	err = g.Wait()
	if err != nil {
		log.Error().Err(err).Msg("worker failed, shut down")
	}
	for _, s := range []*http.Server{srv, webSrv} {
		if s != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = s.Shutdown(sctx)
			cancel()
		}
	}
	return err
}

// startEmbedded starts the embedded nats-server and points co at it. With
// per-role credentials (the default) it creates the missing ones first and
// serve connects as eventbus.RoleServe; otherwise the server requires the
// credentials serve connects with, if any.
func startEmbedded(cfg *config.Config, co *eventbus.ConnOptions, log zerolog.Logger) (*server.Server, error) {
	dir := cfg.NATS.Embedded.DataDir
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	o := natsserver.Options{Listen: cfg.NATS.Embedded.Listen, StoreDir: dir}
	if cfg.NATS.Embedded.Auth == config.AuthRoles {
		creds, err := natsserver.EnsureCredentials(dir)
		if err != nil {
			return nil, err
		}
		o.Roles = creds
		co.User, co.Password, co.Token = eventbus.RoleServe, creds[eventbus.RoleServe], ""
	} else {
		o.User, o.Password, o.Token = co.User, co.Password, co.Token
	}
	ns, err := natsserver.Start(o)
	if err != nil {
		return nil, err
	}
	co.URL = ns.ClientURL()
	ev := log.Info().Str("listen", ns.Addr().String()).Str("data_dir", dir).Str("auth", cfg.NATS.Embedded.Auth)
	if o.Roles != nil {
		ev = ev.Str("credentials", filepath.Join(dir, eventbus.CredentialsDir))
	}
	ev.Msg("embedded nats-server started")
	return ns, nil
}

// awaitStarted reports whether every runner that tells (a worker's
// Started) consumes before ctx is done.
func awaitStarted(ctx context.Context, runners []runner) bool {
	for _, r := range runners {
		s, ok := r.(interface{ Started() <-chan struct{} })
		if !ok {
			continue
		}
		select {
		case <-s.Started():
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// handler serves /metrics, /healthz and, when ui is not nil, the
// operator's page.
func handler(reg *prometheus.Registry, nc *nats.Conn, js jetstream.JetStream, ui http.Handler) http.Handler {
	mux := http.NewServeMux()
	if ui != nil {
		mux.Handle(uiPath, ui)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if !nc.IsConnected() {
			http.Error(w, "nats: not connected", http.StatusServiceUnavailable)
			return
		}
		if _, err := js.Stream(ctx, eventbus.StreamEvents); err != nil {
			http.Error(w, "jetstream: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// compactLoop runs worker.Compact every interval (the first time one
// interval after start) for the VMs deleted more than compact_after ago,
// then worker.ForgetTombstones for the tombstones older than
// tombstone_ttl (unless negative).
func compactLoop(ctx context.Context, js jetstream.JetStream, rt config.Runtime, log zerolog.Logger) {
	t := time.NewTicker(rt.CompactInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := worker.Compact(ctx, js, time.Now().Add(-rt.CompactAfter), log); err != nil && ctx.Err() == nil {
			log.Error().Err(err).Msg("compact deleted vms")
		}
		if rt.TombstoneTTL < 0 {
			continue
		}
		if _, err := worker.ForgetTombstones(ctx, js, time.Now().Add(-rt.TombstoneTTL), log); err != nil && ctx.Err() == nil {
			log.Error().Err(err).Msg("forget tombstones")
		}
	}
}

// loopback reports whether a listener's address is on the loopback
// interface only.
func loopback(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}
