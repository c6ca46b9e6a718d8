package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	zmq4 "github.com/pebbe/zmq4"
)

// Config keys, as errors name them.
const (
	KeySocket = "moksha.monitoring.socket"
	KeyMode   = "moksha.monitoring.socket.mode"
)

// DefaultInterval is moksha's MonitoringProducer frequency.
const DefaultInterval = 5 * time.Second

// ProducerName and ProducerModule describe the publisher itself in its
// reports: moksha's monitoring producer is one of the hub's producers, so
// it lists itself, and fedmsg check -p MonitoringProducer finds it.
const (
	ProducerName   = "MonitoringProducer"
	ProducerModule = "github.com/gofedmsg/fedmsg/monitor"
)

// Errors of Start.
var (
	// ErrNoEndpoint: Options.Endpoint is empty.
	ErrNoEndpoint = errors.New("monitor: " + KeySocket + " is not set")
	// ErrBadMode: moksha.monitoring.socket.mode is not an octal file mode.
	ErrBadMode = errors.New("monitor: bad " + KeyMode)
	// ErrBind: the endpoint could not be bound, or its mode not applied.
	ErrBind = errors.New("monitor: cannot bind " + KeySocket)
)

// Options configure a Publisher.
type Options struct {
	// Endpoint is moksha.monitoring.socket, usually ipc:///path.
	Endpoint string
	// Mode is moksha.monitoring.socket.mode: an octal string ("770")
	// applied to the socket file of an ipc:// endpoint. "" leaves the mode
	// the umask gave.
	Mode string
	// Interval is how often a report is sent (default DefaultInterval).
	Interval time.Duration
	// Consumers is called once per report for the consumers' entries; it
	// resets their counters (consumer.Hub.TakeActivity does).
	Consumers func() []Consumer
	// Producers is called once per report for producers besides the
	// publisher itself, which is always listed. May be nil.
	Producers func() []Producer
	// Logger receives send failures; nil discards them.
	Logger *slog.Logger
}

// ParseMode reads a moksha.monitoring.socket.mode value as Python's
// int(mode, 8) does: octal digits, optionally after 0o, surrounding
// spaces ignored.
func ParseMode(s string) (os.FileMode, error) {
	t := strings.TrimSpace(s)
	digits := strings.TrimPrefix(strings.TrimPrefix(t, "0o"), "0O")
	n, err := strconv.ParseUint(digits, 8, 32)
	if err != nil || digits == "" || strings.ContainsAny(digits, "+-") {
		return 0, fmt.Errorf("%w: %q is not an octal file mode (like \"770\")", ErrBadMode, s)
	}
	if n > 0o7777 {
		return 0, fmt.Errorf("%w: %q is more than 7777", ErrBadMode, s)
	}
	// Setuid, setgid and sticky have their own bits in os.FileMode.
	m := os.FileMode(n & 0o777)
	if n&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if n&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if n&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m, nil
}

// ipcPath is the socket file of an ipc:// endpoint, "" for other
// transports and for Linux's abstract namespace (ipc://@name), which has
// no file.
func ipcPath(endpoint string) string {
	p, ok := strings.CutPrefix(endpoint, "ipc://")
	if !ok || p == "" || strings.HasPrefix(p, "@") {
		return ""
	}
	return p
}

// Publisher sends the monitoring reports. One goroutine owns its socket.
type Publisher struct {
	opts   Options
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
}

// Start binds the PUB socket on o.Endpoint, applies o.Mode to an ipc
// socket file, and sends a report every o.Interval until Close.
func Start(o Options) (*Publisher, error) {
	if o.Endpoint == "" {
		return nil, ErrNoEndpoint
	}
	var mode os.FileMode
	if o.Mode != "" {
		m, err := ParseMode(o.Mode)
		if err != nil {
			return nil, err
		}
		mode = m
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	zctx, err := zmq4.NewContext()
	if err != nil {
		return nil, fmt.Errorf("monitor: zmq context: %w", err)
	}
	sock, addr, err := bind(zctx, o.Endpoint)
	if err == nil && o.Mode != "" {
		if path := ipcPath(o.Endpoint); path != "" {
			if cerr := os.Chmod(path, mode); cerr != nil {
				err = fmt.Errorf("%w: %s %q on %s: %w", ErrBind, KeyMode, o.Mode, path, cerr)
			}
		}
	}
	if err != nil {
		if sock != nil {
			sock.Close()
		}
		zctx.Term()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Publisher{opts: o, addr: addr, cancel: cancel, done: make(chan struct{})}
	go p.run(ctx, zctx, sock)
	return p, nil
}

func bind(zctx *zmq4.Context, endpoint string) (*zmq4.Socket, string, error) {
	sock, err := zctx.NewSocket(zmq4.PUB)
	if err != nil {
		return nil, "", fmt.Errorf("monitor: new PUB socket: %w", err)
	}
	// A report nobody read is worth nothing after the next one: keep
	// none at close, so closing never waits for a slow reader.
	if err := sock.SetLinger(0); err != nil {
		return sock, "", fmt.Errorf("monitor: set linger: %w", err)
	}
	if err := sock.Bind(endpoint); err != nil {
		return sock, "", fmt.Errorf("%w %s: %w", ErrBind, endpoint, err)
	}
	addr := endpoint
	if a, err := sock.GetLastEndpoint(); err == nil && a != "" {
		addr = a
	}
	return sock, addr, nil
}

// Addr is the endpoint the socket is bound on (a tcp port 0 resolved).
func (p *Publisher) Addr() string { return p.addr }

func (p *Publisher) run(ctx context.Context, zctx *zmq4.Context, sock *zmq4.Socket) {
	defer close(p.done)
	defer func() {
		sock.Close()
		zctx.Term()
		// libzmq (4.3) leaves an ipc socket file behind; a stale one
		// only misleads who looks for a running daemon.
		if path := ipcPath(p.opts.Endpoint); path != "" {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				p.opts.Logger.Warn("removing the monitoring socket file", "path", path, "err", err)
			}
		}
	}()
	t := time.NewTicker(p.opts.Interval)
	defer t.Stop()
	self := Producer{Name: ProducerName, Module: ProducerModule, Initialized: true,
		Polling: true, Frequency: p.opts.Interval}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		self.LastRan = time.Now()
		var r Report
		if p.opts.Consumers != nil {
			r.Consumers = p.opts.Consumers()
		}
		if p.opts.Producers != nil {
			r.Producers = p.opts.Producers()
		}
		r.Producers = append(r.Producers, self)
		// PUB drops what it cannot queue instead of blocking; DONTWAIT
		// makes sure of it.
		if _, err := sock.SendBytes(r.Encode(), zmq4.DONTWAIT); err != nil {
			self.Exceptions++
			p.opts.Logger.Warn("monitoring report not sent", "endpoint", p.addr, "err", err)
		} else {
			self.Exceptions = 0 // moksha counts failures in a row
		}
	}
}

// Close stops the reports and closes the socket (removing an ipc socket
// file), waiting at most until ctx ends. Safe to call more than once.
func (p *Publisher) Close(ctx context.Context) error {
	p.cancel()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("monitor: closing %s: %w", p.addr, ctx.Err())
	}
}
