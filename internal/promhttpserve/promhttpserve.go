// Package promhttpserve serves /metrics of a resident source (`vmglue
// listen`, `vmglue bridge`) on its own listener.
package promhttpserve

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// Start listens on addr ("127.0.0.1:0" picks a port) and serves reg's
// metrics under /metrics until stop is called. It returns the address it
// listens on.
func Start(addr string, reg *prometheus.Registry, log zerolog.Logger) (listening string, stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("metrics server")
		}
	}()
	return l.Addr().String(), func() { _ = srv.Close() }, nil
}
