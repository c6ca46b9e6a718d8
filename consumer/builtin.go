package consumer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gofedmsg/fedmsg/internal/retry"
	"github.com/gofedmsg/fedmsg/transport"
)

// FileOptions configure the file consumer.
type FileOptions struct {
	// Path is the file each accepted envelope is appended to, one JSON
	// line each. Created (0644) when missing.
	Path string
}

// File appends each message's envelope to a file as one line of JSON: the
// body as received (Message.JSONLine), then "\n", in one write.
type File struct {
	mu sync.Mutex
	f  *os.File
}

// NewFile opens (or creates) the file for appending.
func NewFile(o FileOptions) (*File, error) {
	if o.Path == "" {
		return nil, errors.New("file consumer: path is required")
	}
	f, err := os.OpenFile(o.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("file consumer: %w", err)
	}
	return &File{f: f}, nil
}

// Handle appends m.
func (f *File) Handle(_ context.Context, m *Message) error {
	line := m.JSONLine()
	buf := make([]byte, 0, len(line)+1)
	buf = append(append(buf, line...), '\n')
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.f.Write(buf); err != nil {
		return fmt.Errorf("file consumer: %w", err)
	}
	return nil
}

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }

// DefaultExecTimeout bounds one run of an exec consumer's command.
const DefaultExecTimeout = 30 * time.Second

// ExecOptions configure the exec consumer.
type ExecOptions struct {
	// Command is the argv to run (a string in the configuration becomes
	// /bin/sh -c STRING).
	Command []string
	// Timeout bounds each run (default DefaultExecTimeout); the command is
	// killed then and the message counts as failed.
	Timeout time.Duration
}

// Exec runs a command per message with the envelope on stdin and
// FEDMSG_TOPIC and FEDMSG_MSG_ID in its environment. A non-zero exit, a
// timeout or a command that cannot start is a handler error.
type Exec struct {
	o   ExecOptions
	log *slog.Logger
}

// NewExec builds an exec consumer.
func NewExec(o ExecOptions, log *slog.Logger) *Exec {
	if o.Timeout <= 0 {
		o.Timeout = DefaultExecTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Exec{o: o, log: log}
}

// maxOutput is how much of a command's output is kept for the log.
const maxOutput = 4096

// Handle runs the command for m.
func (e *Exec) Handle(ctx context.Context, m *Message) error {
	if len(e.o.Command) == 0 {
		return errors.New("exec consumer: no command")
	}
	ctx, cancel := context.WithTimeout(ctx, e.o.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.o.Command[0], e.o.Command[1:]...)
	cmd.Stdin = bytes.NewReader(m.Body)
	id, _ := m.Envelope["msg_id"].(string)
	cmd.Env = append(childEnviron(), "FEDMSG_TOPIC="+m.Topic, "FEDMSG_MSG_ID="+id)
	out := &limitedBuffer{max: maxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	// A child that keeps the pipes open after the kill does not hold us.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("exec consumer: %s: timed out after %v; output: %q", e.o.Command[0], e.o.Timeout, out.String())
	}
	if err != nil {
		return fmt.Errorf("exec consumer: %s: %w; output: %q", e.o.Command[0], err, out.String())
	}
	if out.Len() > 0 {
		e.log.Debug("exec consumer output", "command", e.o.Command[0], "output", out.String())
	}
	return nil
}

// childEnviron is the hub's environment without systemd's notification
// variables: a command must not speak for the hub to its service manager
// (a READY=1 or STOPPING=1 of its own would be taken as the hub's where
// the unit allows it) nor feed the hub's watchdog.
func childEnviron() []string {
	env := os.Environ()
	return slices.DeleteFunc(env, func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return k == "NOTIFY_SOCKET" || k == "WATCHDOG_USEC" || k == "WATCHDOG_PID"
	})
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *limitedBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// Webhook defaults.
const (
	DefaultWebhookTimeout     = 10 * time.Second
	DefaultWebhookAttempts    = 5
	DefaultWebhookBackoff     = 500 * time.Millisecond
	DefaultWebhookMaxBackoff  = 30 * time.Second
	webhookResponseBodyToKeep = 512
)

// WebhookOptions configure the webhook consumer.
type WebhookOptions struct {
	URL string
	// Timeout bounds each attempt (default DefaultWebhookTimeout).
	Timeout time.Duration
	// MaxAttempts is how many POSTs one message gets (default
	// DefaultWebhookAttempts) before the handler fails.
	MaxAttempts int
	// Backoff is the wait after the first failed attempt, doubled after
	// each further one (with jitter) up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// Headers are added to every request.
	Headers map[string]string
	// Client sends the requests; nil uses a private client.
	Client *http.Client
}

// Webhook POSTs each message's envelope (Content-Type application/json,
// the body verbatim) to a URL, with X-Fedmsg-Topic and X-Fedmsg-Msg-Id
// headers. A 2xx is success. A network error, a timeout, a 5xx, 408 or 429
// is retried with backoff up to MaxAttempts, then the handler fails (the
// delivery is Nacked, redeliverable). Any other status fails at once,
// wrapping transport.ErrPermanent: the same POST would be refused again.
type Webhook struct {
	o   WebhookOptions
	log *slog.Logger
}

// NewWebhook builds a webhook consumer.
func NewWebhook(o WebhookOptions, log *slog.Logger) *Webhook {
	if o.Timeout <= 0 {
		o.Timeout = DefaultWebhookTimeout
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultWebhookAttempts
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultWebhookBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultWebhookMaxBackoff
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Webhook{o: o, log: log}
}

// Handle POSTs m, retrying as described on Webhook.
func (w *Webhook) Handle(ctx context.Context, m *Message) error {
	var last error
	for attempt := 0; attempt < w.o.MaxAttempts; attempt++ {
		if attempt > 0 {
			if !retry.Sleep(ctx, retry.Jitter(retry.Exponential(attempt-1, w.o.Backoff, w.o.MaxBackoff))) {
				return fmt.Errorf("webhook consumer: %w (after %d attempts: %w)", ctx.Err(), attempt, last)
			}
		}
		retryable, err := w.post(ctx, m)
		if err == nil {
			return nil
		}
		if !retryable {
			return err
		}
		last = err
		w.log.Debug("webhook attempt failed", "url", w.o.URL, "attempt", attempt+1, "err", err)
	}
	return fmt.Errorf("webhook consumer: gave up after %d attempts: %w", w.o.MaxAttempts, last)
}

func (w *Webhook) post(ctx context.Context, m *Message) (retryable bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.o.URL, bytes.NewReader(m.Body))
	if err != nil {
		return false, fmt.Errorf("webhook consumer: %w: %w", transport.ErrPermanent, err)
	}
	for k, v := range w.o.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Fedmsg-Topic", m.Topic)
	if id, ok := m.Envelope["msg_id"].(string); ok {
		req.Header.Set("X-Fedmsg-Msg-Id", id)
	}
	resp, err := w.o.Client.Do(req)
	if err != nil {
		return true, fmt.Errorf("webhook consumer: POST %s: %w", w.o.URL, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, webhookResponseBodyToKeep))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	err = fmt.Errorf("webhook consumer: POST %s: %s: %q", w.o.URL, resp.Status, strings.TrimSpace(string(snippet)))
	switch {
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests:
		return true, err
	}
	return false, fmt.Errorf("%w: %w", transport.ErrPermanent, err)
}
