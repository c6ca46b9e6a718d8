package cmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/bridge"
	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/internal/sdnotify"
	"github.com/gofedmsg/fedmsg/spool"
	"github.com/gofedmsg/fedmsg/transport"
)

// bridgeCloseTimeout bounds the drain of in-flight messages at shutdown.
const bridgeCloseTimeout = 10 * time.Second

func newBridgeCmd(e *env) *cobra.Command {
	return addMetricsFlag(&cobra.Command{
		Use:   "bridge --config FILE",
		Short: "Run the bridge: routes between the ZeroMQ bus and STOMP/AMQP brokers",
		Long: `Run the bridge gateway. Each --config FILE holds, besides any fedmsg
keys, the bridge's transports and routes:

  transports:
    bus:    {kind: zmq}                       # endpoints from the usual keys
    rabbit: {kind: amqp, amqp_url: [amqp://guest:guest@127.0.0.1:5672/]}
    amq:    {kind: stomp, stomp_uri: "127.0.0.1:61623"}
  routes:
    - {name: bus-to-rabbit, from: bus, to: rabbit, topics: ["org.fedoraproject.*"]}
    - {name: amq-to-bus, from: amq, to: bus, signatures: require-valid}

A transport's keys are fedmsg keys applied over the rest of the
configuration. A zmq transport subscribes to every endpoint and publishes
through the relay at relay_inbound (or binds endpoints[name] when it sets
name). Per route: topics (fedmsg patterns; none = all), signatures
(passthrough, require-valid, resign with certnames["bridge"]) and delivery
(at-most-once, or at-least-once where the sink confirms and the source
can redeliver or the route has a spool). Bodies go through byte for byte. Each route and its
guarantee is logged at start-up; SIGINT or SIGTERM drain in-flight
messages (up to 10s for the sink's confirmations) and exit 0. SIGHUP
reloads log_level; a changed transport, route or other key is logged as
needing a restart.

An optional bridge section tunes loop prevention and batching:

  bridge:
    id: gw1             # in x-gofedmsg-bridge (default host-pid-random)
    max_hops: 4         # bridges a message may cross (negative: no limit)
    echo_window: 100000 # msg_ids of own publishes remembered (negative: off)
    dedup_window: 10000 # msg_ids each route remembers (negative: off)
    max_batch: 256      # most messages a route has unconfirmed at the sink

An at-least-once route from a source that cannot redeliver (ZeroMQ) keeps
each message it takes in a durable spool file until the sink confirmed
it, so a broker outage or a kill -9 of the bridge loses nothing the
bridge received; after a restart the spool is sent first, in order.
"spool: false" on a route refuses it instead. The spool keys:

  bridge:
    spool_dir: /var/lib/fedmsg/spool  # one <route>.spool file per route
                                      # (default: spool_dir, else
                                      # $STATE_DIRECTORY/spool, else this)
    spool_max_bytes: 268435456        # bound per route (default spool_max_bytes)
    spool_full: block                 # or drop-oldest (counted, logged)`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runBridge(c, e)
		},
	})
}

func runBridge(c *cobra.Command, e *env) error {
	files, _ := c.Flags().GetStringArray("config")
	legacy, _ := c.Flags().GetStringArray("config-filename")
	files = append(files, legacy...)
	if len(files) == 0 {
		return usage(errors.New("bridge: --config FILE is required: the file that holds transports and routes"))
	}
	cfg, raw, err := loadBridgeConfig(c, e, files)
	if err != nil {
		return usage(err)
	}
	if cfg.PrintConfig {
		return failure(printJSON(e.stdout, cfg.Redacted()))
	}
	e.scrub.addConfig(cfg)
	log := newLogger(cfg, e.stderr)
	fedmsg.WarnKeyFiles(cfg, log)
	bc, err := bridge.DecodeConfig(raw)
	if err != nil {
		return usage(err)
	}
	ops, stopOps, err := startOps(cfg, log) // metrics_addr
	if err != nil {
		return err
	}
	defer stopOps() // runs last: after the drain and the transports' Close

	ctx := c.Context()
	opts := bridge.Options{Logger: log}
	// Spools: the bridge section's keys, else the fedmsg keys of the same
	// name, else systemd's state directory or the built-in default.
	opts.Spool = bridge.SpoolOptions{Dir: cfg.SpoolDir, MaxBytes: int64(cfg.SpoolMaxBytes), Full: spool.Policy(cfg.SpoolFull)}
	if opts.Spool.Dir == "" {
		opts.Spool.Dir = bridge.SpoolDirFromEnv(func(key string) string {
			for _, kv := range e.environ {
				if v, ok := strings.CutPrefix(kv, key+"="); ok {
					return v
				}
			}
			return ""
		})
	}
	bc.Settings.Apply(&opts)
	for _, r := range bc.Routes {
		switch r.Signatures {
		case bridge.RequireValid:
			if opts.Validator == nil {
				if opts.Validator, err = fedmsg.NewValidator(cfg, log); err != nil {
					return usage(fmt.Errorf("bridge: route %q needs signature validation: %w", r.Name, err))
				}
			}
		case bridge.Resign:
			if opts.Signer == nil {
				if opts.Signer, err = fedmsg.NewSigner(cfg, "bridge", fedmsg.ShortHostname()); err != nil {
					return usage(fmt.Errorf(`bridge: route %q re-signs with certnames["bridge"]: %w`, r.Name, err))
				}
			}
		}
	}

	if opts.Validator != nil {
		ops.AddTrust(opts.Validator) // CA/CRL expiry; readiness
	}
	transports := map[string]transport.Transport{}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bridgeCloseTimeout)
		defer cancel()
		for name, t := range transports {
			if err := t.Close(closeCtx); err != nil {
				log.Warn("closing transport", "transport", name, "err", err)
			}
		}
	}()
	for _, name := range slices.Sorted(maps.Keys(bc.Transports)) {
		tc := bc.Transports[name]
		tcfg, err := cfg.Overlay(fmt.Sprintf("transports.%s", name), tc.Options)
		if err != nil {
			return usage(err)
		}
		e.scrub.addConfig(tcfg) // its broker password, stomp_pass
		t, err := fedmsg.OpenTransport(ctx, tc.Kind, tcfg, log.With("transport", name))
		if err != nil {
			if ctx.Err() != nil {
				return nil // SIGTERM while connecting: a clean stop
			}
			return usage(fmt.Errorf("bridge: transport %q: %w", name, err))
		}
		transports[name] = t
		watchTransport(ops, name, t)
	}

	b, err := bridge.New(bc.Routes, transports, opts)
	if err != nil {
		return usage(err)
	}
	ops.AddBridge(b, routeEnds(bc.Routes))
	ops.Registry().MustRegister(spool.NewCollector(b.SpoolStats)) // fedmsg_spool_*
	// SIGHUP: log_level; transports, routes and the rest need a restart.
	// systemd (NOTIFY_SOCKET): READY=1, RELOADING=1, STOPPING=1, watchdog
	sd := sdnotify.New(log)
	defer onHangup(ctx, log, sd, reloadBridge(c, e, files, log, cfg, raw))()
	// A signal does not cancel the routes' work: it closes the bridge,
	// which stops taking deliveries and waits (bridgeCloseTimeout) for
	// what it sent to be confirmed and acked. Cancelling would abort
	// those publishes and hand the messages back: duplicates, not a drain.
	closeErr := make(chan error, 1)
	stopClose := context.AfterFunc(ctx, func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bridgeCloseTimeout)
		defer cancel()
		log.Info("bridge stopping: draining in-flight messages", "within", bridgeCloseTimeout)
		closeErr <- b.Close(closeCtx)
	})
	stopped := serving(ctx, ops, sd, fmt.Sprintf("bridging %d routes between %d transports", len(bc.Routes), len(transports)))
	err = b.Run(context.WithoutCancel(ctx))
	stopped()
	if !stopClose() {
		if cerr := <-closeErr; cerr != nil {
			log.Warn("bridge did not drain in time", "err", cerr)
		}
	} else {
		// A route failed: Run returned by itself.
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bridgeCloseTimeout)
		defer cancel()
		if cerr := b.Close(closeCtx); cerr != nil {
			log.Warn("bridge did not drain in time", "err", cerr)
		}
	}
	logBridgeStats(log, b)
	// ErrClosed: the signal came before Run began.
	if err != nil && !errors.Is(err, context.Canceled) && !(ctx.Err() != nil && errors.Is(err, bridge.ErrClosed)) {
		return failure(fmt.Errorf("bridge: %w", err))
	}
	return nil
}

// loadBridgeConfig reads the configuration and the bridge's own sections
// (transports, routes, bridge) of files, at start-up and on SIGHUP.
func loadBridgeConfig(c *cobra.Command, e *env, files []string) (*config.Config, map[string]any, error) {
	// The bridge files hold keys fedmsg does not know (transports, routes):
	// load the rest of the configuration without them, then apply each
	// file's fedmsg keys on top.
	cfg, err := config.Load(config.Sources{Environ: e.environ, Flags: c.Flags(), FlagKeys: flagKeys})
	if err != nil {
		return nil, nil, err
	}
	raw := map[string]any{}
	for _, f := range files {
		m, err := config.ReadFile(f)
		if err != nil {
			return nil, nil, err
		}
		for _, key := range []string{"transports", "routes", "bridge"} {
			if v, ok := m[key]; ok {
				raw[key] = mergeBridgeKey(raw[key], v)
				delete(m, key)
			}
		}
		if cfg, err = cfg.Overlay(f, m); err != nil {
			return nil, nil, err
		}
	}
	return cfg, raw, nil
}

// mergeBridgeKey combines the transports (by name) or routes (in order)
// of several --config files.
func mergeBridgeKey(have, add any) any {
	switch a := add.(type) {
	case map[string]any:
		if h, ok := have.(map[string]any); ok {
			out := maps.Clone(h)
			maps.Copy(out, a)
			return out
		}
	case []any:
		if h, ok := have.([]any); ok {
			return append(slices.Clone(h), a...)
		}
	}
	return add
}

func logBridgeStats(log *slog.Logger, b *bridge.Bridge) {
	for _, st := range b.Stats() {
		log.Info("route stopped", "route", st.Route, "received", st.Received, "forwarded", st.Forwarded,
			"dropped", st.DroppedTotal())
	}
	for route, st := range b.SpoolStats() {
		log.Info("route spool", "route", route, "appended", st.Appended, "acked", st.Acked, "dropped", st.Dropped,
			"left", st.Depth, "bytes", st.Bytes)
	}
}
