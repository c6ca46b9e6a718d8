package cmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/message"
)

// errNoCommand is fedmsg-trigger's message, word for word, for a missing
// --command (exit 1, as fedmsg does).
//
//lint:ignore ST1005 fedmsg's exact text
var errNoCommand = errors.New("You must provide a --command to run.")

// triggerDrainTimeout bounds the work after SIGINT/SIGTERM: queued
// messages still run, but a command running when it is up is killed and
// the rest are dropped (and counted in the log).
const triggerDrainTimeout = 10 * time.Second

// stderrTail is how much of a failing command's stderr the log keeps: the
// end, where the reason usually is.
const stderrTail = 2048

type triggerFlags struct {
	topics       []string
	exclude      string
	include      string
	command      string
	waitFor      float64
	maxQueueSize int
}

func newTriggerCmd(e *env) *cobra.Command {
	var f triggerFlags
	c := &cobra.Command{
		Use:   "trigger --command CMD",
		Short: "Run a shell command for each matching message of the bus",
		Long: `Watch the bus like fedmsg-trigger and run CMD (with bash -c) once per
matching message. Subscription and filters are tail's: every endpoint but
relay_inbound, --topic, --exclude, --include; with validate_signatures,
messages that fail validation never reach the command.

Each message's envelope goes to CMD's STDIN as canonical JSON (the bytes
fedmsg signs) followed by a newline; FEDMSG_TOPIC and FEDMSG_MSG_ID are in
its environment. The message is never put into the command line: Python's
fedmsg-trigger ran "echo '<json>' | CMD", so a message containing a quote
could run anything; this one cannot (a message is data, only CMD is code).

Matching messages are queued and run in arrival order, one at a time:
after --wait-for seconds without a new message (0: at once), or as soon
as the queue holds more than --max-queue-size messages (when > 0). CMD's
output goes to ours. A non-zero exit is logged with the msg_id and the
end of CMD's stderr, and the trigger goes on with the next message.

SIGINT or SIGTERM stop the subscription, run what is queued (for at most
10 seconds, then the running command is killed and the rest dropped) and
exit 0.`,
		Example: `  fedmsg trigger --topic org.fedoraproject.prod.bodhi.update.complete \
      --command 'jq -r .msg.update.alias >> updates.txt'
  fedmsg trigger --topic org.fedoraproject.prod.git.receive --wait-for 30 \
      --max-queue-size 100 --command './rebuild-docs.sh'`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runTrigger(c, e, f)
		},
	}
	fs := c.Flags()
	addTopicFlags(fs, &f.topics, &f.exclude, &f.include, "run CMD only for")
	fs.StringVar(&f.command, "command", "", "the bash `CMD` to run per message, the message's JSON on its stdin (required)")
	fs.Float64Var(&f.waitFor, "wait-for", 0, "run the queue only after this many `SECONDS` without a new message (0: at once)")
	fs.IntVar(&f.maxQueueSize, "max-queue-size", 0, "run the queue at once when it holds more than `N` messages (0: only --wait-for decides)")
	return c
}

func runTrigger(c *cobra.Command, e *env, f triggerFlags) error {
	if f.waitFor < 0 || math.IsNaN(f.waitFor) || math.IsInf(f.waitFor, 0) {
		return usage(fmt.Errorf("--wait-for must be a number of seconds >= 0, got %v", f.waitFor))
	}
	if f.maxQueueSize < 0 {
		return usage(fmt.Errorf("--max-queue-size must be >= 0, got %d", f.maxQueueSize))
	}
	filter, err := newTopicFilter(f.exclude, f.include)
	if err != nil {
		return err
	}
	cfg, log, done, err := prepare(c, e)
	if err != nil || done {
		return err
	}
	if f.command == "" {
		return failure(errNoCommand)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		return failure(fmt.Errorf("--command runs with bash: %w", err))
	}
	cfg.Active, cfg.Name = false, "" // trigger never publishes
	notDurable(cfg, log)
	fc, err := fedmsg.New(cfg, fedmsg.WithLogger(log))
	if err != nil {
		return failure(err)
	}
	ctx := c.Context()
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if cerr := fc.Close(closeCtx); cerr != nil {
			log.Warn("close", "err", cerr)
		}
	}()

	// Commands outlive the signal by at most triggerDrainTimeout.
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(triggerDrainTimeout, cancelRun) })
	defer stop()

	in := make(chan *fedmsg.Received)
	tailErr := make(chan error, 1)
	go func() {
		defer close(in)
		for m, err := range fc.Tail(ctx, f.topics...) {
			if err != nil {
				tailErr <- err
				return
			}
			// Says the subscription is live, topic by topic (tests wait for it).
			log.Debug("received", "topic", m.Topic, "msg_id", m.Envelope["msg_id"])
			if !filter.keep(m.Topic) {
				continue
			}
			select {
			case in <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	due := make(chan *fedmsg.Received)
	b := batcher{waitFor: time.Duration(f.waitFor * float64(time.Second)), maxQueue: f.maxQueueSize}
	go b.run(ctx, in, due)
	r := &runner{bash: bash, command: f.command, environ: e.environ, stdout: e.stdout, stderr: e.stderr, log: log}
	log.Info("trigger started", "command", f.command, "wait_for", f.waitFor, "max_queue_size", f.maxQueueSize)
	r.runAll(runCtx, due)
	select {
	case err := <-tailErr:
		return failure(err)
	default:
	}
	log.Info("trigger stopped", "ran", r.ran, "failed", r.failed)
	return nil
}

// batcher holds matching messages until they are due: when waitFor has
// passed since the last one arrived (at once for 0), or when more than
// maxQueue are waiting (maxQueue > 0).
type batcher struct {
	waitFor  time.Duration
	maxQueue int
}

// run reads in until it is closed or ctx ends and sends each message to
// out, in arrival order, once it is due; then it sends what is still
// queued and closes out. It never blocks on out while it could be
// receiving, so the quiet period is timed from arrival even while a
// command runs.
func (b batcher) run(ctx context.Context, in <-chan *fedmsg.Received, out chan<- *fedmsg.Received) {
	defer close(out)
	var queue, ready []*fedmsg.Received
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	flush := func() {
		ready = append(ready, queue...)
		queue = nil
		timer.Stop()
	}
loop:
	for {
		var send chan<- *fedmsg.Received
		var next *fedmsg.Received
		if len(ready) > 0 {
			send, next = out, ready[0]
		}
		select {
		case m, ok := <-in:
			if !ok {
				break loop
			}
			queue = append(queue, m)
			if b.waitFor <= 0 || b.maxQueue > 0 && len(queue) > b.maxQueue {
				flush()
			} else {
				timer.Reset(b.waitFor)
			}
		case <-timer.C:
			flush()
		case send <- next:
			ready = ready[1:]
		case <-ctx.Done():
			break loop
		}
	}
	flush() // stopping: whatever is queued runs now
	for _, m := range ready {
		out <- m
	}
}

// runner runs the command for each message, one at a time.
type runner struct {
	bash, command  string
	environ        []string
	stdout, stderr io.Writer
	log            *slog.Logger

	ran, failed, dropped int
}

// runAll runs the command for every message of due until it is closed.
// Once ctx ends (the drain time is up) the rest are dropped and counted.
func (r *runner) runAll(ctx context.Context, due <-chan *fedmsg.Received) {
	for m := range due {
		if ctx.Err() != nil {
			r.dropped++
			continue
		}
		if err := r.run(ctx, m); err != nil {
			r.failed++
			args := []any{"topic", m.Topic, "msg_id", m.Envelope["msg_id"], "err", err}
			if ce := (*commandError)(nil); errors.As(err, &ce) {
				args = []any{"topic", m.Topic, "msg_id", m.Envelope["msg_id"], "err", ce.err, "stderr", ce.stderr}
			}
			r.log.Error("command failed", args...)
			continue
		}
		r.ran++
	}
	if r.dropped > 0 {
		r.log.Warn("shutdown time is up: queued messages dropped without running the command", "count", r.dropped)
	}
}

// commandError is a run of the command that did not exit 0.
type commandError struct {
	err    error
	stderr string // the last stderrTail bytes
}

func (e *commandError) Error() string {
	return fmt.Sprintf("%v; stderr: %q", e.err, e.stderr)
}

func (e *commandError) Unwrap() error { return e.err }

// run feeds m to one run of the command on stdin: canonical JSON, what
// fedmsg's trigger echoed, and a newline, as echo wrote one.
func (r *runner) run(ctx context.Context, m *fedmsg.Received) error {
	body, err := message.Canonical(m.Envelope)
	if err != nil {
		return fmt.Errorf("encode the envelope: %w", err)
	}
	id, _ := m.Envelope["msg_id"].(string)
	cmd := exec.CommandContext(ctx, r.bash, "-c", r.command)
	cmd.Stdin = bytes.NewReader(append(body, '\n'))
	cmd.Env = append(append([]string(nil), r.environ...), "FEDMSG_TOPIC="+m.Topic, "FEDMSG_MSG_ID="+id)
	tail := &tailBuffer{max: stderrTail}
	cmd.Stdout = r.stdout
	cmd.Stderr = io.MultiWriter(r.stderr, tail)
	// Its own process group: a Ctrl-C on the terminal reaches us, not the
	// command, so the queue finishes; killing the group at the drain
	// deadline also ends whatever CMD started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A child that keeps our pipes open does not hold us after that.
	cmd.WaitDelay = time.Second
	r.log.Debug("running command", "topic", m.Topic, "msg_id", id)
	if err := cmd.Run(); err != nil {
		return &commandError{err: err, stderr: tail.String()}
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
