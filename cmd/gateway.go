package cmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	zmq4 "github.com/pebbe/zmq4"
	"github.com/spf13/cobra"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/internal/sdnotify"
	"github.com/gofedmsg/fedmsg/transport/zmq"
)

func newGatewayCmd(e *env) *cobra.Command {
	return addMetricsFlag(&cobra.Command{
		Use:   "gateway",
		Short: "Republish the whole bus on fedmsg.consumers.gateway.port for outside listeners",
		Long: `Run fedmsg-gateway. It subscribes to every topic of every endpoint of the
configuration (every URL of every endpoints key but relay_inbound, and
those srv_endpoints resolve to) and republishes each message, both frames
byte for byte, on a PUB bound on tcp://*:<fedmsg.consumers.gateway.port>
(9940), with SNDHWM and RCVHWM set to
fedmsg.consumers.gateway.high_water_mark (10000). Nothing is validated;
malformed input (not two frames, a topic that is not UTF-8, a body that is
not a JSON object or is over zmq_max_msg_size) is dropped and counted, as
the relay does. An endpoint that is the gateway's own port on this host is
not subscribed to, so the gateway never hears its own output. Stops
cleanly on SIGINT or SIGTERM; SIGHUP reloads log_level and logs every
other changed key as needing a restart.`,
		Example: `  fedmsg gateway
  FEDMSG_FEDMSG_CONSUMERS_GATEWAY_PORT=9941 fedmsg gateway`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, log, done, err := prepare(c, e)
			if err != nil || done {
				return err
			}
			// systemd (NOTIFY_SOCKET): READY=1, RELOADING=1, STOPPING=1, watchdog
			sd := sdnotify.New(log)
			defer reloadOnHangup(c, e, log, sd, cfg)() // SIGHUP: log_level; the rest needs a restart
			return runGateway(c.Context(), cfg, log, sd)
		},
	})
}

func runGateway(ctx context.Context, cfg *config.Config, log *slog.Logger, sd *sdnotify.Notifier) error {
	port := cfg.GatewayPort
	var endpoints, skipped []string
	for _, ep := range gatewayEndpoints(ctx, cfg, log) {
		// The gateway's own PUB may be listed in endpoints (so that other
		// subscribers find it); subscribing to it would echo every message
		// back into the gateway and out again, for ever. Skip it.
		if isOwnEndpoint(ep, port) {
			skipped = append(skipped, ep)
			continue
		}
		endpoints = append(endpoints, ep)
	}
	if len(endpoints) == 0 {
		return usage(errors.New("the gateway has nothing to subscribe to: set endpoints (or srv_endpoints) to the publishers to republish"))
	}

	o := fedmsg.ZMQOptions(cfg, log)
	o.HighWaterMark = cfg.GatewayHighWaterMark
	if o.MaxMsgSize <= 0 {
		o.MaxMsgSize = zmq.DefaultMaxMsgSize
	}
	if err := o.Validate(); err != nil {
		return usage(err)
	}
	ops, stopOps, err := startOps(cfg, log) // metrics_addr
	if err != nil {
		return err
	}
	defer stopOps() // after g.close: the sockets are released
	g, err := openGateway(o, endpoints, port)
	if err != nil {
		return failure(err)
	}
	defer g.close(o.Linger)
	ops.AddZMQForwarder("gateway", &g.stats)
	log.Info("gateway started", "publish", g.pubAddr, "subscribed", endpoints, "skipped_own", skipped,
		"high_water_mark", o.HighWaterMark)
	stopReports := reportDrops(ctx, log, "gateway", &g.stats, dropReportInterval)
	stopped := serving(ctx, ops, sd, fmt.Sprintf("republishing %d endpoints on %s", len(endpoints), g.pubAddr))
	err = g.forward(ctx, o.MaxMsgSize, log)
	stopped()
	stopReports()
	log.Info("gateway stopped", "forwarded", g.stats.Received(), "dropped", g.stats.DroppedTotal(), "dropped_by_reason", g.stats.DroppedByReason())
	if err != nil {
		return failure(fmt.Errorf("gateway: %w", err))
	}
	return nil
}

// gatewayEndpoints is what the gateway subscribes to: what tail connects
// to, endpoints first, then srv_endpoints.
func gatewayEndpoints(ctx context.Context, cfg *config.Config, log *slog.Logger) []string {
	eps := fedmsg.SubscribeEndpoints(cfg)
	if len(cfg.SRVEndpoints) > 0 {
		srv := fedmsg.ResolveSRV(ctx, nil, cfg.SRVEndpoints, func(d string, err error) {
			log.Warn("srv_endpoints: lookup failed, skipped", "domain", d, "err", err)
		})
		for _, d := range cfg.SRVEndpoints {
			eps = append(eps, srv[d]...)
		}
	}
	return eps
}

// isOwnEndpoint reports whether ep is the gateway's own PUB: a tcp URL on
// port whose host is this machine (a wildcard, localhost, a loopback
// address, an address of a local interface or this host's name).
func isOwnEndpoint(ep string, port int) bool {
	rest, ok := strings.CutPrefix(ep, "tcp://")
	if !ok {
		return false
	}
	host, p, err := net.SplitHostPort(rest)
	if err != nil || p != strconv.Itoa(port) {
		return false
	}
	switch strings.ToLower(host) {
	case "*", "localhost", "0.0.0.0", "::", "":
		return true
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsLoopback() || ip.IsUnspecified() {
			return true
		}
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return true
			}
		}
		return false
	}
	if hn, err := os.Hostname(); err == nil {
		short, _, _ := strings.Cut(hn, ".")
		if strings.EqualFold(host, hn) || strings.EqualFold(host, short) {
			return true
		}
	}
	return false
}

// gateway is one SUB connected to every endpoint and one PUB bound on the
// gateway port, in their own ZeroMQ context.
type gateway struct {
	zctx     *zmq4.Context
	sub, pub *zmq4.Socket
	pubAddr  string
	stats    zmq.Stats
}

func openGateway(o zmq.Options, endpoints []string, port int) (g *gateway, err error) {
	g = &gateway{}
	if g.zctx, err = zmq.NewContext(o); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			g.close(0)
		}
	}()
	if g.pub, err = zmq.NewSocket(g.zctx, zmq4.PUB, o); err != nil {
		return nil, err
	}
	bind := fmt.Sprintf("tcp://*:%d", port)
	if err = g.pub.Bind(bind); err != nil {
		return nil, fmt.Errorf("bind %s (fedmsg.consumers.gateway.port): %w", bind, err)
	}
	g.pubAddr = bind
	if ep, e := g.pub.GetLastEndpoint(); e == nil && ep != "" {
		g.pubAddr = ep
	}
	if g.sub, err = zmq.NewSocket(g.zctx, zmq4.SUB, o); err != nil {
		return nil, err
	}
	if err = g.sub.SetSubscribe(""); err != nil {
		return nil, fmt.Errorf("zmq: gateway subscribe: %w", err)
	}
	// A timeout lets forward notice cancellation without a second socket.
	if err = g.sub.SetRcvtimeo(100 * time.Millisecond); err != nil {
		return nil, fmt.Errorf("zmq: gateway receive timeout: %w", err)
	}
	for _, ep := range endpoints {
		if err = g.sub.Connect(ep); err != nil {
			return nil, fmt.Errorf("zmq: connect %s: %w", ep, err)
		}
	}
	return g, nil
}

// forward receives until ctx ends and sends every well-formed message on,
// both frames unchanged.
func (g *gateway) forward(ctx context.Context, maxSize int, log *slog.Logger) error {
	for ctx.Err() == nil {
		frames, err := g.sub.RecvMessageBytes(0)
		if err != nil {
			switch zmq4.AsErrno(err) {
			case zmq4.Errno(syscall.EAGAIN), zmq4.Errno(syscall.EINTR):
				continue // receive timeout or a signal: look at ctx again
			case zmq4.ETERM:
				return nil
			}
			return fmt.Errorf("receive: %w", err)
		}
		if reason := g.stats.Check(frames, maxSize); reason != zmq.DropNone {
			log.Debug("gateway dropped malformed message", "reason", reason.String())
			continue
		}
		if _, err := g.pub.SendBytes(frames[0], zmq4.SNDMORE); err != nil {
			return fmt.Errorf("send on %s: %w", g.pubAddr, err)
		}
		if _, err := g.pub.SendBytes(frames[1], 0); err != nil {
			return fmt.Errorf("send on %s: %w", g.pubAddr, err)
		}
	}
	return nil
}

// close releases the sockets and the context, waiting at most linger (and
// a second) for queued output.
func (g *gateway) close(linger time.Duration) {
	if g.sub != nil {
		g.sub.Close()
	}
	if g.pub != nil {
		g.pub.Close()
	}
	done := make(chan struct{})
	go func() { g.zctx.Term(); close(done) }()
	select {
	case <-done:
	case <-time.After(linger + time.Second):
	}
}
