// Package opsserver is the operations endpoint of the fedmsg daemons:
// /metrics (Prometheus text format, from a private registry), /healthz
// (the process runs its loop) and /readyz (every readiness check passes)
// on one HTTP listener, metrics_addr.
//
// The library packages do not import Prometheus: they keep atomic
// counters and expose snapshots (zmq.Stats, bridge.Bridge.Stats,
// consumer.Hub.Stats, replay.GapTracker.Stats, signing.Validator.TrustInfo,
// the brokers' Connected and Reconnects), which the collectors of this
// package read at scrape time. Only publish latency is pushed, through a
// one-method observer interface the transports define.
package opsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Timeouts of the HTTP side. A scrape must never hold a daemon's shutdown.
const (
	// checkTimeout bounds one /readyz evaluation of all checks.
	checkTimeout = 2 * time.Second
	// readHeaderTimeout guards against clients that never finish a request.
	readHeaderTimeout = 5 * time.Second
	// DefaultShutdownTimeout bounds Shutdown when its ctx has no deadline.
	DefaultShutdownTimeout = 2 * time.Second
)

// ErrListen wraps failures to open the metrics listener.
var ErrListen = errors.New("opsserver: cannot listen")

// Check is one readiness condition: nil when it holds, otherwise the
// reason it does not. It must return quickly (it runs on each /readyz).
type Check func(ctx context.Context) error

type namedCheck struct {
	name  string
	check Check
}

// Server is the operations endpoint of one daemon. The zero value is not
// usable; call New.
type Server struct {
	reg     *prometheus.Registry
	sources *sourceCollector
	log     *slog.Logger
	confirmState

	mu     sync.Mutex
	checks []namedCheck

	alive atomic.Bool

	srv  *http.Server
	addr string
	done chan struct{} // closed when Serve returned
}

// New returns a server whose registry holds the Go runtime and process
// collectors and the fedmsg collector that the Add* methods feed. log may
// be nil.
func New(log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{reg: prometheus.NewRegistry(), sources: newSourceCollector(), log: log}
	s.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		s.sources,
	)
	return s
}

// Registry is the server's private registry, for metrics of its own
// that a caller registers.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// AddReadiness adds a named readiness check. Names are shown in /readyz
// answers; use the name an operator knows (the transport's name in the
// configuration, "trust" for the CA/CRL).
func (s *Server) AddReadiness(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, namedCheck{name, c})
}

// SetAlive says whether the daemon runs its loop: /healthz answers 200
// only while it does.
func (s *Server) SetAlive(alive bool) { s.alive.Store(alive) }

// Failing runs every readiness check and returns the failures as
// "name: reason" lines, sorted by name; none means ready.
func (s *Server) Failing(ctx context.Context) []string {
	s.mu.Lock()
	checks := slices.Clone(s.checks)
	s.mu.Unlock()
	var out []string
	for _, c := range checks {
		if err := c.check(ctx); err != nil {
			out = append(out, c.name+": "+oneLine(err.Error()))
		}
	}
	slices.Sort(out)
	return out
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

// Handler serves /metrics, /healthz and /readyz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: false,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !s.alive.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not running")
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
		defer cancel()
		failing := s.Failing(ctx)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !s.alive.Load() {
			failing = append([]string{"daemon: not running"}, failing...)
		}
		if len(failing) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready")
			for _, f := range failing {
				fmt.Fprintln(w, f)
			}
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// Start listens on addr (host:port; port 0 picks one, see Addr) and
// serves in the background until Shutdown. The error names the
// metrics_addr key.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%w on metrics_addr %s: %w", ErrListen, addr, err)
	}
	s.addr = ln.Addr().String()
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics endpoint stopped", "metrics_addr", s.addr, "err", err)
		}
	}()
	return nil
}

// Addr is the address the server listens on, once started.
func (s *Server) Addr() string { return s.addr }

// Shutdown stops the listener, lets requests in progress finish within
// ctx (DefaultShutdownTimeout when ctx has no deadline), then closes what
// is left. It is a no-op before Start.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	s.alive.Store(false)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultShutdownTimeout)
		defer cancel()
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	<-s.done
	return err
}
