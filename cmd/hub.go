package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/consumer"
	"github.com/gofedmsg/fedmsg/datagrepper"
	"github.com/gofedmsg/fedmsg/internal/sdnotify"
	"github.com/gofedmsg/fedmsg/monitor"
	"github.com/gofedmsg/fedmsg/signing"
	"github.com/gofedmsg/fedmsg/transport"
)

// hubCloseTimeout bounds closing the transport at shutdown.
const hubCloseTimeout = 10 * time.Second

func newHubCmd(e *env) *cobra.Command {
	return addMetricsFlag(&cobra.Command{
		Use:   "hub --config FILE",
		Short: "Run consumers: write, execute or POST the messages of chosen topics",
		Long: `Run the consumers listed under "consumers" in the --config files, over
the bus the configuration selects: ZeroMQ (every endpoint, as tail), or
with zmq_enabled false the STOMP broker (stomp_uri; with stomp_queue only
that queue is consumed, with stomp_durable_name an ActiveMQ durable
subscription) or the AMQP broker (amqp_url).

  consumers:
    - name: archive            # required, unique
      kind: file               # file, exec or webhook
      topics: ["org.fedoraproject.prod.bodhi.", "*.git.receive"]
      path: /var/lib/fedmsg/archive.jsonl
    - name: notify
      kind: exec
      topics: ["org.fedoraproject.prod.pagure.*"]
      command: ["/usr/local/bin/notify"]   # a string runs with /bin/sh -c
      timeout: 30                          # seconds, or "30s"
    - name: ci
      kind: webhook
      url: https://ci.example.com/hooks/fedmsg
      validate_signatures: true
      max_attempts: 5          # also: timeout, backoff, max_backoff, headers

topics are fedmsg patterns (a prefix, or a glob with * ? [...]); none,
"" or "*" is every topic. validate_signatures left out follows the
configuration's validate_signatures (CVE-2017-1000001); true or false
overrides it for that consumer. file appends each accepted envelope as one
JSON line; exec runs the command with the envelope on stdin (non-zero exit
= failure); webhook POSTs it as application/json, retrying with backoff.
A failed message is Nacked (redelivered on a queue) after a pause of 1s,
doubling while failures repeat (at most 1m); a rejected one
(bad signature, topic mismatch) is logged and acknowledged. SIGINT or
SIGTERM finish the messages in hand (up to 10s) and exit 0. SIGHUP
reloads the consumers, signature validation and log_level (a new
configuration that does not load is logged and the running one kept);
other changed keys are logged as needing a restart.

With status_directory set, each consumer's status file
<status_directory>/fedmsg-hub/<name> holds the message it is on ("pre")
or last finished ("post"). With datagrepper_url set too, a restart fetches
from datagrepper what each consumer missed since then (its topics only,
validated like live messages, oldest first, each once) alongside live
traffic; a failing datagrepper is logged and retried with backoff.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runHub(c, e)
		},
	})
}

func runHub(c *cobra.Command, e *env) error {
	files, _ := c.Flags().GetStringArray("config")
	legacy, _ := c.Flags().GetStringArray("config-filename")
	files = append(files, legacy...)
	if len(files) == 0 {
		return usage(errors.New("hub: --config FILE is required: the file that lists the consumers"))
	}
	cfg, raw, found, err := loadHubConfig(c, e, files)
	if err != nil {
		return usage(fmt.Errorf("hub: %w", err))
	}
	if cfg.PrintConfig {
		return failure(printJSON(e.stdout, cfg.Redacted()))
	}
	if !found {
		return usage(errors.New("hub: no consumers: list them under \"consumers\" in a --config file"))
	}
	e.scrub.addConfig(cfg)
	log := newLogger(cfg, e.stderr)
	fedmsg.WarnKeyFiles(cfg, log)
	first, err := buildHub(cfg, raw, log, e.scrub)
	if err != nil {
		return usage(fmt.Errorf("hub: %w", err))
	}
	specs := first.specs
	ops, stopOps, err := startOps(cfg, log) // metrics_addr
	if err != nil {
		return err
	}
	// stopOps runs last: after the consumers finished and the transport closed.
	defer stopOps()
	var current atomic.Pointer[hubRun] // what the monitor reports: the hub running now
	current.Store(first)
	defer func() { current.Load().close() }()

	ctx := c.Context()
	t, kind, err := hubTransport(ctx, cfg, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil // SIGTERM while connecting: a clean stop
		}
		return usage(fmt.Errorf("hub: %w", err))
	}
	watchTransport(ops, kind, t)
	ops.AddHub(hubStats(func() []consumer.Stats { return current.Load().hub.Stats() }), kind)
	ops.AddTrust(hubTrust(func() *signing.Validator { return current.Load().trust }))
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hubCloseTimeout)
		defer cancel()
		if err := t.Close(closeCtx); err != nil {
			log.Warn("closing transport", "err", err)
		}
	}()
	stopMonitor, err := startMonitor(cfg, log, func() []monitor.Consumer { // moksha.monitoring.socket
		return current.Load().monitor()
	})
	if err != nil {
		return err
	}
	defer stopMonitor()
	first.logConsumers(log)
	args := []any{"transport", kind, "consumers", len(specs)}
	if kind == fedmsg.KindSTOMP && cfg.StompQueue != "" {
		args = append(args, "stomp_queue", cfg.StompQueue)
	}
	if kind == fedmsg.KindSTOMP && cfg.StompDurableName != "" {
		args = append(args, "stomp_durable_name", cfg.StompDurableName)
	}
	// SIGHUP: consumers, signature validation and log_level are reloaded
	// (reload.go); the rest needs a restart.
	next := make(chan *hubRun)
	// systemd (NOTIFY_SOCKET): READY=1, RELOADING=1, STOPPING=1, watchdog
	sd := sdnotify.New(log)
	defer onHangup(ctx, log, sd, reloadHub(c, e, files, log, first, next))()
	log.Info("hub started", args...)
	stopped := serving(ctx, ops, sd, fmt.Sprintf("running %d consumers on %s", len(specs), kind))
	err = runHubs(ctx, t, log, &current, next)
	stopped()
	for _, st := range current.Load().hub.Stats() {
		log.Info("consumer stopped", "consumer", st.Consumer, "received", st.Received, "handled", st.Handled,
			"failed", st.Failed, "rejected", st.Rejected)
	}
	if err != nil {
		return failure(fmt.Errorf("hub: %w", err))
	}
	return nil
}

// loadHubConfig reads the configuration and the consumers list of files,
// at start-up and on SIGHUP; found says whether any file has consumers.
func loadHubConfig(c *cobra.Command, e *env, files []string) (cfg *config.Config, raw []any, found bool, err error) {
	// The consumers key is not one of fedmsg's: take it out of each file,
	// then apply the file's fedmsg keys on top of the configuration.
	cfg, err = config.Load(config.Sources{Environ: e.environ, Flags: c.Flags(), FlagKeys: flagKeys})
	if err != nil {
		return nil, nil, false, err
	}
	for _, f := range files {
		m, err := config.ReadFile(f)
		if err != nil {
			return nil, nil, false, err
		}
		if v, ok := m["consumers"]; ok {
			found = true
			list, ok := v.([]any)
			if !ok {
				return nil, nil, false, fmt.Errorf("%s: consumers must be a list", f)
			}
			raw = append(raw, list...)
			delete(m, "consumers")
		}
		if cfg, err = cfg.Overlay(f, m); err != nil {
			return nil, nil, false, err
		}
	}
	return cfg, raw, found, nil
}

// hubRun is a hub built from one configuration, with what it holds open.
type hubRun struct {
	cfg     *config.Config
	raw     []any // the consumers section it was built from
	specs   []consumer.Spec
	hub     *consumer.Hub
	closers []io.Closer
	trust   *signing.Validator // nil when no consumer validates; for the metrics endpoint
}

// buildHub builds the consumers and the hub of cfg and raw (the consumers
// section). The webhooks' header values and URL passwords go to s.
func buildHub(cfg *config.Config, raw []any, log *slog.Logger, s *scrubber) (_ *hubRun, err error) {
	specs, err := consumer.DecodeConfig(raw)
	if err != nil {
		return nil, err
	}
	for _, sp := range specs {
		if sp.Kind == consumer.KindWebhook {
			s.add(slices.Collect(maps.Values(sp.Webhook.Headers))...)
			s.addURL(sp.Webhook.URL)
		}
	}
	hr := &hubRun{cfg: cfg, raw: raw, specs: specs}
	defer func() {
		if err != nil {
			hr.close()
		}
	}()
	var consumers []consumer.Consumer
	for _, s := range specs {
		cons, closer, err := consumer.Build(s, log.With("consumer", s.Name))
		if err != nil {
			return nil, err
		}
		consumers = append(consumers, cons)
		hr.closers = append(hr.closers, closer)
	}
	// The drain after SIGTERM: the message in hand gets drainTimeout.
	opts := consumer.Options{ValidateSignatures: cfg.ValidateSignatures, Logger: log, ShutdownGrace: drainTimeout}
	// status_directory and datagrepper_url: status files and the backlog.
	opts.StatusDirectory, opts.SkipLastMessage = cfg.StatusDirectory, cfg.SkipLastMessage
	if cfg.StatusDirectory != "" && cfg.DatagrepperURL != "" {
		dg, err := datagrepper.New(cfg.DatagrepperURL, datagrepper.Options{})
		if err != nil {
			return nil, fmt.Errorf("datagrepper_url: %w", err)
		}
		opts.Archive = dg
	}
	if slices.ContainsFunc(specs, func(s consumer.Spec) bool {
		return consumer.EffectiveValidate(s.ValidateSignatures, cfg.ValidateSignatures)
	}) {
		v, err := fedmsg.NewValidator(cfg, log)
		if err != nil {
			return nil, fmt.Errorf("validate_signatures: %w", err)
		}
		opts.Validator = v
		hr.trust = v
	}
	if hr.hub, err = consumer.New(consumers, opts); err != nil {
		return nil, err
	}
	return hr, nil
}

// close releases what the consumers hold (files).
func (hr *hubRun) close() {
	for _, cl := range hr.closers {
		_ = cl.Close()
	}
}

// logConsumers says what each consumer takes.
func (hr *hubRun) logConsumers(log *slog.Logger) {
	validates := hr.hub.Validates()
	for _, s := range hr.specs {
		log.Info("consumer", "consumer", s.Name, "kind", s.Kind, "topics", s.Topics, "validate_signatures", validates[s.Name])
	}
}

// monitor is the hub's entries in the monitoring report.
func (hr *hubRun) monitor() []monitor.Consumer {
	kinds := map[string]string{}
	for _, s := range hr.specs {
		kinds[s.Name] = s.Kind
	}
	return hubMonitor(hr.hub, kinds)()
}

// hubTransport is the bus the configuration selects: ZeroMQ (subscribing
// to every endpoint; the hub publishes nothing, so it binds nothing), or
// with zmq_enabled false the STOMP or AMQP broker.
func hubTransport(ctx context.Context, cfg *config.Config, log *slog.Logger) (transport.Transport, string, error) {
	if cfg.ZMQEnabled {
		c := *cfg
		c.Name, c.RelayInbound = "", nil // subscribe only: no publishing socket
		t, err := fedmsg.OpenTransport(ctx, fedmsg.KindZMQ, &c, log)
		return t, fedmsg.KindZMQ, err
	}
	t, kind, err := fedmsg.BrokerTransport(cfg, log)
	return t, kind, err
}
