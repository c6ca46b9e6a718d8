package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"time"

	zmq4 "github.com/pebbe/zmq4"
	"github.com/spf13/cobra"

	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/consumer"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/monitor"
	"github.com/gofedmsg/fedmsg/transport/zmq"
)

type checkFlags struct {
	timeout   int
	consumers []string
	producers []string
}

func newCheckCmd(e *env) *cobra.Command {
	var f checkFlags
	c := &cobra.Command{
		Use:   "check [--timeout N] [-c NAME]... [-p NAME]...",
		Short: "Check that a hub or relay runs the named consumers and producers",
		Long: `Run fedmsg-check: read one report from the monitoring socket that fedmsg
hub and fedmsg relay publish on moksha.monitoring.socket, and check that
every consumer (-c) and producer (-p) named is listed and initialized.

A name missing from the report prints "<name>" is not active!, one not
initialized "<name>" is not initialized! (both on stderr), and the command
exits 1. Otherwise it prints "All consumers and producers are active!"
(or, with no names given, "No consumers or producers specified so all will
be shown.") and then the report as JSON (indented, keys sorted).

Consumer names are the hub's consumer names from its --config file; the
relay reports one consumer, RelayConsumer. Both list one producer, the
report's own MonitoringProducer. No report within --timeout seconds exits
1. Reports come every 5 seconds.`,
		Example: `  fedmsg check
  fedmsg check --timeout 20 -c archive -c notify -p MonitoringProducer
  FEDMSG_MOKSHA_MONITORING_SOCKET=ipc:///var/run/fedmsg/monitoring-fedmsg-hub.socket fedmsg-check -c archive`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runCheck(c, e, f)
		},
	}
	fs := c.Flags()
	fs.IntVar(&f.timeout, "timeout", 10, "wait at most `N` seconds for a report")
	fs.StringArrayVarP(&f.consumers, "consumer", "c", nil, "a consumer `NAME` that must be active and initialized (repeatable)")
	fs.StringArrayVarP(&f.producers, "producer", "p", nil, "a producer `NAME` that must be active and initialized (repeatable)")
	return c
}

// errNoReport: nothing came from the monitoring socket in time.
var errNoReport = errors.New("no monitoring report")

func runCheck(c *cobra.Command, e *env, f checkFlags) error {
	if f.timeout < 0 {
		return usage(fmt.Errorf("--timeout must be >= 0, got %d", f.timeout))
	}
	cfg, _, done, err := prepare(c, e)
	if err != nil || done {
		return err
	}
	endpoint := cfg.MokshaMonitoringSocket
	if endpoint == "" {
		//lint:ignore ST1005 fedmsg-check's exact text, which scripts match
		return failure(errors.New(`No monitoring endpoint has been configured: please set "moksha.monitoring.socket"`))
	}
	frame, err := receiveReport(c.Context(), endpoint, time.Duration(f.timeout)*time.Second)
	if errors.Is(err, errNoReport) {
		//lint:ignore ST1005 fedmsg-check's exact text, which scripts match
		return failure(fmt.Errorf("Failed to receive message from the monitoring endpoint (%s) in %d seconds.", endpoint, f.timeout))
	}
	if c.Context().Err() != nil {
		return failure(errors.New("interrupted before a report came"))
	}
	if err != nil {
		return failure(err)
	}
	report, err := message.DecodeObject(frame)
	if err != nil {
		return failure(fmt.Errorf("the monitoring endpoint (%s) sent a report that is not a JSON object: %w", endpoint, err))
	}
	if len(f.consumers) == 0 && len(f.producers) == 0 {
		fmt.Fprintln(e.stdout, "No consumers or producers specified so all will be shown.")
	} else {
		missing, uninitialized := checkNames(e.stderr, report, "consumers", f.consumers)
		m, u := checkNames(e.stderr, report, "producers", f.producers)
		switch {
		case missing || m:
			//lint:ignore ST1005 fedmsg-check's exact text, which scripts match
			return failure(errors.New("Some consumers and/or producers are missing!"))
		case uninitialized || u:
			//lint:ignore ST1005 fedmsg-check's exact text, which scripts match
			return failure(errors.New("Some consumers and/or producers are uninitialized!"))
		}
		fmt.Fprintln(e.stdout, "All consumers and producers are active!")
	}
	// Python's json.dumps(indent=2, sort_keys=True).
	out, err := message.Pretty(report)
	if err != nil {
		return failure(fmt.Errorf("printing the report: %w", err))
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", out)
	return failure(err)
}

// checkNames looks for each name among report[kind]'s entries and says
// on w which are absent and which are not initialized (initialized must
// be exactly true, as fedmsg-check's "is not True").
func checkNames(w io.Writer, report map[string]any, kind string, names []string) (missing, uninitialized bool) {
	active := map[string]map[string]any{}
	list, _ := report[kind].([]any)
	for _, item := range list {
		if entry, ok := item.(map[string]any); ok {
			if name, ok := entry["name"].(string); ok {
				active[name] = entry
			}
		}
	}
	for _, name := range names {
		entry, ok := active[name]
		switch {
		case !ok:
			fmt.Fprintf(w, "\"%s\" is not active!\n", name)
			missing = true
		case entry["initialized"] != true:
			fmt.Fprintf(w, "\"%s\" is not initialized!\n", name)
			uninitialized = true
		}
	}
	return missing, uninitialized
}

// receiveReport connects a SUB to endpoint and returns the first frame of
// the first message within timeout (errNoReport after it), or ctx's error.
func receiveReport(ctx context.Context, endpoint string, timeout time.Duration) ([]byte, error) {
	zctx, err := zmq4.NewContext()
	if err != nil {
		return nil, fmt.Errorf("zmq context: %w", err)
	}
	defer zctx.Term()
	s, err := zctx.NewSocket(zmq4.SUB)
	if err != nil {
		return nil, fmt.Errorf("zmq socket: %w", err)
	}
	defer s.Close()
	// Short receive timeouts let ^C and the deadline be noticed.
	const step = 100 * time.Millisecond
	for _, set := range []func() error{
		func() error { return s.SetLinger(0) },
		func() error { return s.SetRcvtimeo(step) },
		func() error { return s.SetSubscribe("") },
	} {
		if err := set(); err != nil {
			return nil, fmt.Errorf("monitoring socket %s: %w", endpoint, err)
		}
	}
	if err := s.Connect(endpoint); err != nil {
		return nil, fmt.Errorf("%s %s: %w", monitor.KeySocket, endpoint, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		frame, err := s.RecvBytes(0)
		if err == nil {
			return frame, nil
		}
		switch zmq4.AsErrno(err) {
		case zmq4.Errno(syscall.EAGAIN), zmq4.Errno(syscall.EINTR): // the receive timeout, a signal
		default:
			return nil, fmt.Errorf("receiving from %s: %w", endpoint, err)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !time.Now().Before(deadline) {
			return nil, errNoReport
		}
	}
}

// monitorInterval is how often fedmsg hub and fedmsg relay send a report:
// moksha's 5 seconds.
const monitorInterval = monitor.DefaultInterval

// monitorCloseTimeout bounds closing the monitoring socket at exit.
const monitorCloseTimeout = 5 * time.Second

// startMonitor starts the monitoring reports when moksha.monitoring.socket
// is set (the returned stop closes them), and does nothing otherwise. A
// bad moksha.monitoring.socket.mode is misuse (exit 2).
func startMonitor(cfg *config.Config, log *slog.Logger, consumers func() []monitor.Consumer) (stop func(), err error) {
	if cfg.MokshaMonitoringSocket == "" {
		return func() {}, nil
	}
	p, err := monitor.Start(monitor.Options{Endpoint: cfg.MokshaMonitoringSocket, Mode: cfg.MokshaMonitoringSocketMode,
		Interval: monitorInterval, Consumers: consumers, Logger: log})
	if errors.Is(err, monitor.ErrBadMode) {
		return nil, usage(err)
	}
	if err != nil {
		return nil, failure(err)
	}
	log.Info("monitoring socket bound", "endpoint", p.Addr(), "interval", monitorInterval)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), monitorCloseTimeout)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			log.Warn("closing the monitoring socket", "err", err)
		}
	}, nil
}

// consumerModule is the "module" of a hub consumer in the report: where
// its kind is implemented (moksha gives the Python module of the class).
const consumerModule = "github.com/gofedmsg/fedmsg/consumer."

// hubMonitor turns the hub's activity into the report's consumer
// entries, one per consumer; kinds maps a consumer name to its kind.
func hubMonitor(h *consumer.Hub, kinds map[string]string) func() []monitor.Consumer {
	return func() []monitor.Consumer {
		acts := h.TakeActivity()
		out := make([]monitor.Consumer, 0, len(acts))
		for _, a := range acts {
			topics := a.Topics
			if len(topics) == 0 {
				topics = []string{"*"}
			}
			out = append(out, monitor.Consumer{Name: a.Consumer, Module: consumerModule + kinds[a.Consumer], Topic: topics,
				Initialized: a.Initialized, Exceptions: a.Exceptions, JSONify: true, Backlog: a.Backlog,
				HeadcountOut: a.HeadcountOut, HeadcountIn: a.HeadcountIn, Times: a.Times})
		}
		return out
	}
}

// relayMonitor reports the relay as fedmsg-relay does: one consumer,
// RelayConsumer, taking every topic. headcount_in counts what arrived,
// headcount_out what was forwarded, exceptions what was dropped as
// malformed, all since the previous report. times stays empty: timing
// each forwarded message would cost the relay more than it tells.
func relayMonitor(st *zmq.Stats) func() []monitor.Consumer {
	var lastFwd, lastDropped uint64 // only the monitor's goroutine calls this
	return func() []monitor.Consumer {
		fwd, dropped := st.Received(), st.DroppedTotal()
		c := monitor.Consumer{Name: "RelayConsumer", Module: "github.com/gofedmsg/fedmsg/transport/zmq", Topic: []string{"*"},
			Initialized: true, JSONify: true, Exceptions: dropped - lastDropped,
			HeadcountIn: fwd - lastFwd + dropped - lastDropped, HeadcountOut: fwd - lastFwd, Times: []time.Duration{}}
		lastFwd, lastDropped = fwd, dropped
		return []monitor.Consumer{c}
	}
}
