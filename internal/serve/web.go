package serve

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/web"
)

// uiPath is where the operator's page is mounted.
const uiPath = "/ui/"

// webHandler is the operator's page (internal/web) mounted on uiPath, nil
// when web.disabled.
func webHandler(cfg *config.Config, js jetstream.JetStream, log zerolog.Logger) (http.Handler, error) {
	if cfg.Web.Disabled {
		return nil, nil
	}
	ops, err := cfg.Web.Tokens()
	if err != nil {
		return nil, err
	}
	s, err := web.New(web.Options{JS: js, Workers: cfg.Workers.Names(), Secrets: cfg.SecretNames(),
		Actions: cfg.Web.Actions, Operators: ops, Base: uiPath, Log: log.With().Str("component", "web").Logger()})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(uiPath, http.StripPrefix(uiPath[:len(uiPath)-1], s))
	return mux, nil
}

// serveWeb serves ui on its own listener (web.listen) until the returned
// server is shut down.
func serveWeb(addr string, ui http.Handler, log zerolog.Logger) (*http.Server, string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("web listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(uiPath, ui)
	mux.Handle("GET /{$}", http.RedirectHandler(uiPath, http.StatusFound))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("web server")
		}
	}()
	log.Info().Str("listen", l.Addr().String()).Msg("serving the operator's page on " + uiPath)
	return srv, l.Addr().String(), nil
}
