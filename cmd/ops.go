package cmd

import (
	"context"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/bridge"
	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/consumer"
	"github.com/gofedmsg/fedmsg/internal/opsserver"
	"github.com/gofedmsg/fedmsg/internal/sdnotify"
	"github.com/gofedmsg/fedmsg/signing"
	"github.com/gofedmsg/fedmsg/transport"
	"github.com/gofedmsg/fedmsg/transport/amqp"
	"github.com/gofedmsg/fedmsg/transport/stomp"
	"github.com/gofedmsg/fedmsg/transport/zmq"
)

// addMetricsFlag gives a daemon its --metrics-addr flag. It is a flag of
// the daemons only (relay, signing-relay, gateway, bridge, hub), not a
// common one: the one-shot commands have nothing to serve. The flag name
// maps to the metrics_addr key like every other flag.
func addMetricsFlag(c *cobra.Command) *cobra.Command {
	c.Flags().String("metrics-addr", "",
		"serve /metrics, /healthz and /readyz over HTTP on `HOST:PORT` (metrics_addr; default off)")
	return c
}

// startOps creates the daemon's operations endpoint and, when
// metrics_addr is set, starts serving it. The server is returned either
// way, so that the daemon registers its metrics without checking; stop
// shuts it down (bounded) and belongs in a defer placed before the
// daemon's own cleanup, so that it runs after the daemon has drained.
// /healthz answers 200 only while the daemon is serving (see serving).
func startOps(cfg *config.Config, log *slog.Logger) (ops *opsserver.Server, stop func(), err error) {
	ops = opsserver.New(log)
	if cfg.MetricsAddr == "" {
		return ops, func() {}, nil
	}
	if err := ops.Start(cfg.MetricsAddr); err != nil {
		return nil, nil, failure(err)
	}
	log.Info("metrics endpoint listening", "metrics_addr", ops.Addr(), "paths", "/metrics /healthz /readyz")
	return ops, func() {
		ctx, cancel := context.WithTimeout(context.Background(), opsserver.DefaultShutdownTimeout)
		defer cancel()
		if err := ops.Shutdown(ctx); err != nil {
			log.Warn("metrics endpoint did not stop in time", "err", err)
		}
	}, nil
}

// serving marks the daemon as serving, once its sockets are bound and its
// transports open: /healthz answers 200 and, under systemd, READY=1 goes
// out with status (the watchdog is fed from then on). When ctx ends
// (SIGTERM or SIGINT: the drain starts) systemd is told STOPPING=1. The
// returned func marks the end of serving, once the daemon's loop is over.
func serving(ctx context.Context, ops *opsserver.Server, sd *sdnotify.Notifier, status string) (stopped func()) {
	ops.SetAlive(true)
	sd.Ready(status)
	disarm := context.AfterFunc(ctx, sd.Stopping)
	return func() {
		disarm()
		ops.SetAlive(false)
		sd.Stopped()
	}
}

// watchTransport registers what a transport can tell about itself: the
// connection state, reconnects and confirm latency of a broker (whose
// connection then gates readiness), the receive counts and per-endpoint
// last-message age of ZeroMQ subscriptions.
func watchTransport(ops *opsserver.Server, name string, t transport.Transport) {
	if g, ok := t.(*fedmsg.GapRecovering); ok {
		ops.AddGapTracker(name, g.Gaps())
		t = g.Unwrap()
	}
	switch t := t.(type) {
	case *amqp.Transport:
		ops.AddBroker(name, "amqp", t)
		t.SetPublishObserver(ops.PublishObserver(name, "amqp"))
	case *stomp.Transport:
		ops.AddBroker(name, "stomp", t)
		t.SetPublishObserver(ops.PublishObserver(name, "stomp"))
	case *zmq.Transport:
		ops.AddZMQTransport(name, t)
	}
}

// routeEnds maps each bridge route to the names of its transports, the
// transport labels of its metrics.
func routeEnds(routes []bridge.RouteConfig) map[string]opsserver.RouteEnds {
	out := make(map[string]opsserver.RouteEnds, len(routes))
	for _, r := range routes {
		out[r.Name] = opsserver.RouteEnds{From: r.From, To: r.To}
	}
	return out
}

// hubStats reads the counts of the hub running now: a SIGHUP reload
// replaces the hub, and its counters start again from zero (a counter
// reset to Prometheus).
type hubStats func() []consumer.Stats

func (f hubStats) Stats() []consumer.Stats { return f() }

// hubTrust reads the CA/CRL of the hub running now, which a SIGHUP
// reload may replace; a hub whose consumers do not validate has none,
// and then no trust metrics and no trust readiness check.
type hubTrust func() *signing.Validator

func (f hubTrust) TrustInfo() signing.TrustInfo {
	if v := f(); v != nil {
		return v.TrustInfo()
	}
	return signing.TrustInfo{}
}

func (f hubTrust) TrustProblem() error {
	if v := f(); v != nil {
		return v.TrustProblem()
	}
	return nil
}
