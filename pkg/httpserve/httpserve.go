// Package httpserve runs an http.Server until its context ends and then shuts
// it down gracefully, and provides the operational endpoints every service
// exposes: /healthz (process alive), /readyz (dependencies ready, false as
// soon as draining starts) and /metrics (Prometheus).
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Serve serves srv on ln until ctx is done, then calls srv.Shutdown with a
// timeout of grace, so in-flight requests finish. It blocks until the server
// has stopped and returns nil after a clean shutdown.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		_ = srv.Close() // grace is over: cut what is left
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("shutdown %s: %w", ln.Addr(), err)
	}
	return nil
}

// Ops holds a service's readiness state and metrics registry and serves the
// operational endpoints. It is safe for concurrent use.
type Ops struct {
	// Registry is the service's own Prometheus registry (with Go and process
	// collectors), so several services in one process (zen dev, tests) never
	// collide on registration.
	Registry *prometheus.Registry

	ready    func(context.Context) error
	draining atomic.Bool
}

// NewOps returns Ops whose /readyz calls ready (nil means always ready).
func NewOps(ready func(context.Context) error) *Ops {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Ops{Registry: reg, ready: ready}
}

// SetDraining makes /readyz answer 503 from now on: called when shutdown starts.
func (o *Ops) SetDraining() { o.draining.Store(true) }

// Ready reports whether the service is ready, with the reason when not.
func (o *Ops) Ready(ctx context.Context) error {
	if o.draining.Load() {
		return errors.New("draining")
	}
	if o.ready == nil {
		return nil
	}
	return o.ready(ctx)
}

// Register adds the operational endpoints to mux.
func (o *Ops) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := o.Ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry}))
}

// Handler returns a mux serving only the operational endpoints, for workers
// whose only HTTP surface they are.
func (o *Ops) Handler() http.Handler {
	mux := http.NewServeMux()
	o.Register(mux)
	return mux
}

// NewServer returns an http.Server with the timeouts every listener of the
// project uses, so a slow client cannot hold a connection forever.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}
