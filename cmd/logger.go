package cmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/message"
)

type loggerFlags struct {
	message    string
	jsonInput  bool
	topic      string
	modname    string
	certPrefix string
	timeout    time.Duration
}

// defaultPublishTimeout bounds each publish of the one-shot commands
// (logger, announce, dg-replay). Daemons retry a broker for ever; a
// command run from a shell or cron must end and say why.
const defaultPublishTimeout = 30 * time.Second

// addPublishTimeoutFlag adds --timeout to a command that publishes once
// and exits.
func addPublishTimeoutFlag(c *cobra.Command, d *time.Duration) {
	c.Flags().DurationVar(d, "timeout", defaultPublishTimeout,
		"give up, exit 1 and print the last connection failure when a message is not published within `DURATION` "+
			"(the broker is unreachable or refuses the connection); 0 waits until interrupted")
}

func newLoggerCmd(e *env) *cobra.Command {
	var f loggerFlags
	c := &cobra.Command{
		Use:   "logger",
		Short: "Publish messages from the command line through the relay",
		Long: `Publish messages like fedmsg-logger, through the relay at relay_inbound
(active mode). The topic is <topic_prefix>.<environment>.<modname>.<topic>.

  --message TEXT               one message, body {"log": TEXT}
  --message TEXT --json-input  one message, TEXT parsed as JSON
  --json-input                 all of stdin parsed as one JSON value
  (neither)                    one message per stdin line, {"log": line}`,
		Example: `  echo "Hello, world." | fedmsg logger
  fedmsg logger --message "deployed" --modname ansible --topic playbook.complete
  echo '{"repo": "fedmsg"}' | fedmsg logger --json-input --modname git --topic repo.update`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runLogger(c, e, f)
		},
	}
	fs := c.Flags()
	fs.StringVar(&f.message, "message", "", "publish this `TEXT` instead of reading stdin")
	fs.BoolVar(&f.jsonInput, "json-input", false, "parse the input as JSON instead of wrapping it in {\"log\": ...}")
	fs.StringVar(&f.topic, "topic", "log", "topic suffix after the modname")
	fs.StringVar(&f.modname, "modname", "logger", "module name, the topic part after the environment")
	fs.StringVar(&f.certPrefix, "cert-prefix", "shell", "certificate prefix used when sign_messages is true")
	addPublishTimeoutFlag(c, &f.timeout)
	return c
}

func runLogger(c *cobra.Command, e *env, f loggerFlags) error {
	cfg, log, done, err := prepare(c, e)
	if err != nil || done {
		return err
	}
	if c.Flags().Changed("cert-prefix") || cfg.CertPrefix == "" {
		cfg.CertPrefix = f.certPrefix
	}
	bodies, err := loggerBodies(e.stdin, f)
	if err != nil {
		return usage(err)
	}
	return publishActive(c.Context(), cfg, log, f.topic, f.modname, bodies, f.timeout)
}

// publishActive publishes each of bodies on <topic_prefix>.<environment>.
// <modname>.<topic> through the relay at relay_inbound (or the broker
// with zmq_enabled false), as fedmsg-logger and fedmsg-announce do; a
// signal ends it at once with a clean exit. A publish not done within
// timeout (0: no bound) fails the command.
func publishActive(ctx context.Context, cfg *config.Config, log *slog.Logger, topic, modname string, bodies func(func(loggerBody) bool), timeout time.Duration) error {
	cfg.Active = true // these commands always publish through the relay
	notDurable(cfg, log)
	fc, err := fedmsg.New(cfg, fedmsg.WithLogger(log))
	if err != nil {
		return failure(err)
	}
	defer func() {
		// zmq_linger bounds the flush; a little more bounds the close.
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(cfg.ZMQLinger)*time.Millisecond+2*time.Second)
		defer cancel()
		if cerr := fc.Close(closeCtx); cerr != nil {
			log.Warn("close", "err", cerr)
		}
	}()
	// stdin may block forever; a signal must still end the command at once.
	errc := make(chan error, 1)
	go func() { errc <- publishBodies(ctx, fc, bodies, topic, modname, timeout) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return nil // interrupted: a clean exit
	}
}

func publishBodies(ctx context.Context, fc *fedmsg.Context, bodies func(func(loggerBody) bool), topic, modname string, timeout time.Duration) error {
	for body := range bodies {
		if body.err != nil {
			return usage(body.err)
		}
		if err := publishWithin(ctx, fc, topic, modname, body.msg, timeout); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return failure(err)
		}
	}
	return nil
}

// publishWithin is fc.Publish bounded by timeout (0: by ctx alone). The
// transport's error already names the endpoint and its last failure (a
// refused connection, a certificate the broker's CA did not sign, ...).
func publishWithin(ctx context.Context, fc *fedmsg.Context, topic, modname string, msg any, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, errPublishTimeout)
		defer cancel()
	}
	err := fc.Publish(ctx, topic, modname, msg)
	if err != nil && errors.Is(context.Cause(ctx), errPublishTimeout) {
		return fmt.Errorf("not published within --timeout %s: %w", timeout, err)
	}
	return err
}

var errPublishTimeout = errors.New("publish timed out")

// notDurable drops stomp_durable_name for a command other than the hub.
// The name is an ActiveMQ client-id, one connection at a time: a tail or
// a logger run with the hub's configuration would keep the hub out while
// it runs, or take and ack what the durable subscription kept for the
// hub. These commands subscribe (if at all) as plain topic subscribers.
func notDurable(cfg *config.Config, log *slog.Logger) {
	if cfg.StompDurableName != "" {
		log.Debug("stomp_durable_name is the hub's: ignored by this command", "stomp_durable_name", cfg.StompDurableName)
		cfg.StompDurableName = ""
	}
}

type loggerBody struct {
	msg any
	err error
}

// loggerBodies yields the messages fedmsg-logger would send for f, reading
// stdin lazily so a long-running pipe publishes as lines arrive.
func loggerBodies(stdin io.Reader, f loggerFlags) (func(func(loggerBody) bool), error) {
	switch {
	case f.message != "" && f.jsonInput:
		v, err := message.Decode([]byte(f.message))
		if err != nil {
			return nil, fmt.Errorf("--message is not valid JSON: %w", err)
		}
		return one(v), nil
	case f.message != "":
		return one(map[string]any{"log": f.message}), nil
	case f.jsonInput:
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		v, err := message.Decode(data)
		if err != nil {
			return nil, fmt.Errorf("stdin is not one JSON value: %w", err)
		}
		return one(v), nil
	}
	return func(yield func(loggerBody) bool) {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64*1024), 16<<20)
		for sc.Scan() {
			if !yield(loggerBody{msg: map[string]any{"log": strings.TrimSpace(sc.Text())}}) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			yield(loggerBody{err: fmt.Errorf("read stdin: %w", err)})
		}
	}, nil
}

func one(v any) func(func(loggerBody) bool) {
	return func(yield func(loggerBody) bool) { yield(loggerBody{msg: v}) }
}
