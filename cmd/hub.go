package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/consumer"
	"github.com/gofedmsg/fedmsg/datagrepper"
	"github.com/gofedmsg/fedmsg/transport"
)

// hubCloseTimeout bounds closing the transport at shutdown.
const hubCloseTimeout = 10 * time.Second

func newHubCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "hub --config FILE",
		Short: "Run consumers: write, execute or POST the messages of chosen topics",
		Long: `Run the consumers listed under "consumers" in the --config files, over
the bus the configuration selects: ZeroMQ (every endpoint, as tail), or
with zmq_enabled false the STOMP broker (stomp_uri; with stomp_queue only
that queue is consumed) or the AMQP broker (amqp_url).

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
A failed message is Nacked (redelivered on a queue); a rejected one
(bad signature, topic mismatch) is logged and acknowledged. SIGINT or
SIGTERM finish the messages in hand and exit 0.

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
	}
}

func runHub(c *cobra.Command, e *env) error {
	files, _ := c.Flags().GetStringArray("config")
	legacy, _ := c.Flags().GetStringArray("config-filename")
	files = append(files, legacy...)
	if len(files) == 0 {
		return usage(errors.New("hub: --config FILE is required: the file that lists the consumers"))
	}
	// The consumers key is not one of fedmsg's: take it out of each file,
	// then apply the file's fedmsg keys on top of the configuration.
	cfg, err := config.Load(config.Sources{Environ: e.environ, Flags: c.Flags(), FlagKeys: flagKeys})
	if err != nil {
		return usage(err)
	}
	var raw []any
	found := false
	for _, f := range files {
		m, err := config.ReadFile(f)
		if err != nil {
			return usage(err)
		}
		if v, ok := m["consumers"]; ok {
			found = true
			list, ok := v.([]any)
			if !ok {
				return usage(fmt.Errorf("hub: %s: consumers must be a list", f))
			}
			raw = append(raw, list...)
			delete(m, "consumers")
		}
		if cfg, err = cfg.Overlay(f, m); err != nil {
			return usage(err)
		}
	}
	if cfg.PrintConfig {
		return failure(printJSON(e.stdout, cfg.Redacted()))
	}
	if !found {
		return usage(errors.New("hub: no consumers: list them under \"consumers\" in a --config file"))
	}
	specs, err := consumer.DecodeConfig(raw)
	if err != nil {
		return usage(fmt.Errorf("hub: %w", err))
	}
	log := newLogger(cfg, e.stderr)

	var consumers []consumer.Consumer
	var closers []io.Closer
	defer func() {
		for _, cl := range closers {
			_ = cl.Close()
		}
	}()
	for _, s := range specs {
		cons, closer, err := consumer.Build(s, log.With("consumer", s.Name))
		if err != nil {
			return usage(fmt.Errorf("hub: %w", err))
		}
		consumers = append(consumers, cons)
		closers = append(closers, closer)
	}
	opts := consumer.Options{ValidateSignatures: cfg.ValidateSignatures, Logger: log}
	// status_directory and datagrepper_url: status files and the backlog.
	opts.StatusDirectory, opts.SkipLastMessage = cfg.StatusDirectory, cfg.SkipLastMessage
	if cfg.StatusDirectory != "" && cfg.DatagrepperURL != "" {
		dg, err := datagrepper.New(cfg.DatagrepperURL, datagrepper.Options{})
		if err != nil {
			return usage(fmt.Errorf("hub: datagrepper_url: %w", err))
		}
		opts.Archive = dg
	}
	if slices.ContainsFunc(specs, func(s consumer.Spec) bool {
		return consumer.EffectiveValidate(s.ValidateSignatures, cfg.ValidateSignatures)
	}) {
		v, err := fedmsg.NewValidator(cfg, log)
		if err != nil {
			return usage(fmt.Errorf("hub: validate_signatures: %w", err))
		}
		opts.Validator = v
	}
	hub, err := consumer.New(consumers, opts)
	if err != nil {
		return usage(fmt.Errorf("hub: %w", err))
	}

	ctx := c.Context()
	t, kind, err := hubTransport(ctx, cfg, log)
	if err != nil {
		return usage(fmt.Errorf("hub: %w", err))
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hubCloseTimeout)
		defer cancel()
		if err := t.Close(closeCtx); err != nil {
			log.Warn("closing transport", "err", err)
		}
	}()
	kinds := map[string]string{}
	for _, s := range specs {
		kinds[s.Name] = s.Kind
	}
	stopMonitor, err := startMonitor(cfg, log, hubMonitor(hub, kinds)) // moksha.monitoring.socket
	if err != nil {
		return err
	}
	defer stopMonitor()
	validates := hub.Validates()
	for _, s := range specs {
		log.Info("consumer", "consumer", s.Name, "kind", s.Kind, "topics", s.Topics, "validate_signatures", validates[s.Name])
	}
	args := []any{"transport", kind, "consumers", len(specs)}
	if kind == fedmsg.KindSTOMP && cfg.StompQueue != "" {
		args = append(args, "stomp_queue", cfg.StompQueue)
	}
	log.Info("hub started", args...)
	err = hub.Run(ctx, t)
	for _, st := range hub.Stats() {
		log.Info("consumer stopped", "consumer", st.Consumer, "received", st.Received, "handled", st.Handled,
			"failed", st.Failed, "rejected", st.Rejected)
	}
	if err != nil {
		return failure(fmt.Errorf("hub: %w", err))
	}
	return nil
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
