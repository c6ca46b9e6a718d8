package cmd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/loadgen"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/transport"
)

// benchCloseTimeout bounds closing the transports after a run.
const benchCloseTimeout = 5 * time.Second

// benchDefaultCount is --count when neither it nor --duration is given.
const benchDefaultCount = 10000

type benchFlags struct {
	kind, from, to string
	count          int
	duration       time.Duration
	size           int
	rate           float64
	window, batch  int
	warmup         int
	topic          string
	wait           time.Duration
	json           bool
}

func newBenchCmd(e *env) *cobra.Command {
	var f benchFlags
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure a path of the bus: throughput, loss, duplicates and latency",
		Long: `Publish numbered fedmsg envelopes through one transport, receive them
from another (or the same kind), and report throughput (sent and received
messages a second), loss, duplicates, reordering and latency percentiles
(p50, p90, p99, max) from a send time carried in each body.

The transports come from the usual configuration keys:

  zmq    publishes through the relay at relay_inbound (or, when name is
         set, binds endpoints[name] itself: a direct PUB to SUB); receives
         by subscribing to every endpoints entry, like fedmsg tail
  stomp  stomp_uri (stomp_user, stomp_pass, stomp_ssl_*, ...)
  amqp   amqp_url (amqp_exchange, amqp_ssl_*, ...)

--transport KIND publishes and receives on KIND; --from and --to name the
two sides apart, to measure something running in between: a relay
(--transport zmq: relay_inbound in, endpoints out), or a bridge
(--from zmq --to amqp, with a running 'fedmsg bridge' whose route joins
them).

Each body is a canonical, unsigned fedmsg envelope of --size bytes with
its own msg_id; the default topic is <topic_prefix>.<environment>.bench.<run>,
unique to the run. Before measuring, probes are sent until one comes
through (ZeroMQ subscriptions and broker bindings settle asynchronously).
No more than --window messages are ever in flight (sent, not yet
received), so a slow path makes the publisher wait instead of queueing
without bound.

On a terminal a progress line is updated while the run goes. SIGINT stops
sending, waits up to --wait for what is on the way, and reports.

Exit status: 0 when every message sent arrived; 1 when any was lost (or
the path never carried a probe, or publishing failed); 2 for a bad flag
or configuration.`,
		Example: `  fedmsg bench --transport zmq --count 100000          # through the relay
  fedmsg bench --transport amqp --config rabbit.yaml --json
  fedmsg bench --from zmq --to stomp --rate 2000 --duration 30s   # through a bridge`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runBench(c, e, f)
		},
	}
	fs := c.Flags()
	fs.StringVar(&f.kind, "transport", fedmsg.KindZMQ, "publish and receive on this transport `KIND`: zmq, stomp or amqp")
	fs.StringVar(&f.from, "from", "", "publish on this transport `KIND` (default --transport)")
	fs.StringVar(&f.to, "to", "", "receive on this transport `KIND` (default --transport)")
	fs.IntVar(&f.count, "count", 0, fmt.Sprintf("send `N` messages (default %d, or unbounded with --duration)", benchDefaultCount))
	fs.DurationVar(&f.duration, "duration", 0, "send for this long (e.g. 30s); with --count, whichever ends first")
	fs.IntVar(&f.size, "size", loadgen.DefaultSize, "body size in `BYTES` (the envelope is padded to it)")
	fs.Float64Var(&f.rate, "rate", 0, "send `N` messages a second (0: as fast as the window allows)")
	fs.IntVar(&f.window, "window", loadgen.DefaultWindow, "at most `N` messages in flight (sent, not yet received)")
	fs.IntVar(&f.batch, "batch", loadgen.DefaultBatch, "at most `N` messages per publish call (pipelined where the transport allows)")
	fs.IntVar(&f.warmup, "warmup", 0, "send `N` unmeasured messages first (a JVM broker is slow to start)")
	fs.StringVar(&f.topic, "topic", "", "publish and subscribe on this fully-qualified `TOPIC` (default unique to the run)")
	fs.DurationVar(&f.wait, "wait", loadgen.DefaultWait, "after sending, wait for missing messages until none came for this long")
	fs.BoolVar(&f.json, "json", false, "print the report as one JSON object")
	return c
}

// benchReport is the --json output: the run's figures and its path.
type benchReport struct {
	From string `json:"from"`
	To   string `json:"to"`
	*loadgen.Report
}

func runBench(c *cobra.Command, e *env, f benchFlags) error {
	from, to := f.from, f.to
	if from == "" {
		from = f.kind
	}
	if to == "" {
		to = f.kind
	}
	kinds := []string{fedmsg.KindZMQ, fedmsg.KindSTOMP, fedmsg.KindAMQP}
	for _, k := range []struct{ flag, v string }{{"--transport", f.kind}, {"--from", from}, {"--to", to}} {
		if !slices.Contains(kinds, k.v) {
			return usage(fmt.Errorf("bench: %s %q: want zmq, stomp or amqp", k.flag, k.v))
		}
	}
	switch {
	case f.count < 0:
		return usage(fmt.Errorf("bench: --count must be >= 0, got %d", f.count))
	case f.duration < 0:
		return usage(fmt.Errorf("bench: --duration must be >= 0, got %v", f.duration))
	case f.rate < 0:
		return usage(fmt.Errorf("bench: --rate must be >= 0, got %v", f.rate))
	case f.window < 1:
		return usage(fmt.Errorf("bench: --window must be >= 1, got %d", f.window))
	case f.batch < 1:
		return usage(fmt.Errorf("bench: --batch must be >= 1, got %d", f.batch))
	case f.warmup < 0:
		return usage(fmt.Errorf("bench: --warmup must be >= 0, got %d", f.warmup))
	case f.wait <= 0:
		return usage(fmt.Errorf("bench: --wait must be > 0, got %v", f.wait))
	}
	count := f.count
	if count == 0 && f.duration == 0 {
		count = benchDefaultCount
	}

	cfg, log, done, err := prepare(c, e)
	if err != nil || done {
		return err
	}
	topic := f.topic
	if topic == "" {
		var r [4]byte
		_, _ = rand.Read(r[:]) // crypto/rand.Read does not fail
		topic = message.Topic(cfg.TopicPrefix, cfg.Environment, "bench", hex.EncodeToString(r[:]))
	}
	username := message.Username()
	if least, err := loadgen.MinSize(topic, username); err != nil {
		return usage(fmt.Errorf("bench: --topic: %w", err))
	} else if f.size < least {
		return usage(fmt.Errorf("bench: --size %d is below the %d bytes of the envelope's fixed fields", f.size, least))
	}
	if err := checkBenchPath(cfg, from, to); err != nil {
		return usage(err)
	}

	ctx := c.Context()
	// The publishing side: a zmq one binds or connects its publisher only.
	pub, err := fedmsg.OpenTransport(ctx, from, cfg, log.With("side", "from"))
	if err != nil {
		return usage(fmt.Errorf("bench: --from %s: %w", from, err))
	}
	// The receiving side: a zmq one with no publisher, so that it neither
	// binds endpoints[name] a second time nor connects to the relay.
	subCfg := *cfg
	if to == fedmsg.KindZMQ {
		subCfg.Name, subCfg.RelayInbound, subCfg.Active = "", nil, false
	}
	sub, err := fedmsg.OpenTransport(ctx, to, &subCfg, log.With("side", "to"))
	if err != nil {
		closeBench(ctx, pub)
		return usage(fmt.Errorf("bench: --to %s: %w", to, err))
	}
	defer closeBench(ctx, pub, sub)

	opts := loadgen.Options{
		Topic: topic, Username: username, Count: count, Duration: f.duration, Size: f.size, Rate: f.rate,
		Window: f.window, Batch: f.batch, Warmup: f.warmup, Wait: f.wait,
	}
	progress := isTerminal(e.stdout)
	if progress {
		opts.Progress = progressLine(e.stdout)
	}
	log.Debug("bench starting", "from", from, "to", to, "topic", topic)
	rep, err := loadgen.Run(ctx, pub, sub, opts)
	if progress {
		fmt.Fprint(e.stdout, "\r\x1b[K") // the report replaces the progress line
	}
	if rep == nil {
		return failure(fmt.Errorf("bench: %s to %s: %w", from, to, err))
	}
	out := benchReport{From: from, To: to, Report: rep}
	if f.json {
		if perr := printJSON(e.stdout, out); perr != nil {
			return failure(perr)
		}
	} else {
		printBenchReport(e.stdout, out)
	}
	switch {
	case err != nil:
		return failure(fmt.Errorf("bench: %s to %s: %w", from, to, err))
	case rep.Lost > 0:
		return failure(fmt.Errorf("bench: %d of %d messages lost", rep.Lost, rep.Sent))
	case rep.Stalled:
		return failure(errors.New("bench: nothing arrived while the window was full"))
	}
	return nil
}

// checkBenchPath reports, naming the key, a side that has nothing to
// publish to or subscribe to; the broker kinds' own keys are checked
// when their transports are built.
func checkBenchPath(cfg *config.Config, from, to string) error {
	if from == fedmsg.KindZMQ && cfg.Name == "" && len(cfg.RelayInbound) == 0 {
		return errors.New("bench: --from zmq publishes through the relay at relay_inbound, which is empty: set relay_inbound, or name (with endpoints[name]) to publish directly")
	}
	if to == fedmsg.KindZMQ && len(fedmsg.SubscribeEndpoints(cfg)) == 0 && len(cfg.SRVEndpoints) == 0 {
		return errors.New("bench: --to zmq subscribes to every endpoints entry, and endpoints is empty")
	}
	return nil
}

func closeBench(ctx context.Context, ts ...transport.Transport) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), benchCloseTimeout)
	defer cancel()
	for _, t := range ts {
		_ = t.Close(cctx)
	}
}

// progressLine returns a loadgen progress callback that redraws one line
// on the terminal w: totals, the rates since the last call, in flight.
func progressLine(w io.Writer) func(loadgen.Progress) {
	var last loadgen.Progress
	return func(p loadgen.Progress) {
		dt := (p.Elapsed - last.Elapsed).Seconds()
		var sr, rr float64
		if dt > 0 {
			sr, rr = float64(p.Sent-last.Sent)/dt, float64(p.Received-last.Received)/dt
		}
		last = p
		fmt.Fprintf(w, "\r\x1b[K%6.1fs  sent %d (%s/s)  received %d (%s/s)  in flight %d",
			p.Elapsed.Seconds(), p.Sent, si(sr), p.Received, si(rr), p.Sent-p.Received)
	}
}

// si writes a rate with a k or M suffix.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func printBenchReport(w io.Writer, r benchReport) {
	fmt.Fprintf(w, "%s -> %s  topic %s  %d-byte bodies", r.From, r.To, r.Topic, r.Size)
	if r.Rate > 0 {
		fmt.Fprintf(w, "  target %s/s", si(r.Rate))
	}
	if r.Interrupted {
		fmt.Fprint(w, "  (interrupted)")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "sent       %8d in %7.3fs  %9.0f msgs/s\n", r.Sent, r.SendSeconds, r.SentRate)
	fmt.Fprintf(w, "received   %8d in %7.3fs  %9.0f msgs/s\n", r.Received, r.Seconds, r.RecvRate)
	fmt.Fprintf(w, "lost       %8d\nduplicates %8d\nreordered  %8d\n", r.Lost, r.Duplicates, r.Reordered)
	if r.Foreign > 0 {
		fmt.Fprintf(w, "other      %8d (not this run's, ignored)\n", r.Foreign)
	}
	l := r.Latency
	fmt.Fprintf(w, "latency    p50 %v  p90 %v  p99 %v  max %v\n", round(l.P50), round(l.P90), round(l.P99), round(l.Max))
	if r.Stalled {
		fmt.Fprintf(w, "stalled: the window of %d was full and nothing arrived\n", r.Window)
	}
}

// round keeps three significant figures of a latency.
func round(d time.Duration) time.Duration {
	for _, u := range []time.Duration{time.Second, time.Millisecond, time.Microsecond} {
		if d >= u {
			return d.Round(u / 100)
		}
	}
	return d
}
