package zmq

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Options configure a ZeroMQ transport. They mirror fedmsg's keys; the
// caller (the root package or cmd) fills them from config.Config.
type Options struct {
	// Bind lists the endpoints a passive publisher may bind; the first that
	// binds wins (fedmsg's endpoints["<name>.<hostname>"]). For tcp the host
	// part is ignored and the port bound on every interface, as fedmsg does.
	Bind []string
	// BindKey names where Bind came from, for errors (endpoints["bodhi.app01"]).
	BindKey string
	// Connect lists the endpoints an active publisher connects to
	// (relay_inbound); the first that connects wins.
	Connect []string
	// Subscribe lists every endpoint a subscriber connects to.
	Subscribe []string

	// HighWaterMark applies to SNDHWM and RCVHWM. 0 means no limit (libzmq's
	// own meaning; Python fedmsg left libzmq's default of 1000 instead).
	HighWaterMark int
	// IOThreads is the size of the ZeroMQ context's I/O thread pool.
	IOThreads int
	// Linger bounds how long Close waits to flush an active publisher.
	Linger time.Duration
	// ReconnectIvl and ReconnectIvlMax pace reconnection of SUB sockets.
	ReconnectIvl, ReconnectIvlMax time.Duration
	// TCPKeepalive, TCPKeepaliveCnt, TCPKeepaliveIdle, TCPKeepaliveIntvl are
	// the ZMQ_TCP_KEEPALIVE* options; -1 leaves the OS default.
	TCPKeepalive, TCPKeepaliveCnt, TCPKeepaliveIdle, TCPKeepaliveIntvl int
	// MaxMsgSize drops received bodies larger than this many bytes.
	MaxMsgSize int
	// SubscriberReady bounds how long Publish first waits for a subscriber
	// (a relay) to announce itself, so the first message is not lost to
	// ZeroMQ's slow joiner. fedmsg's post_init_sleep.
	SubscriberReady time.Duration

	// Logger receives warnings about dropped input; nil discards them.
	Logger *slog.Logger
}

// DefaultMaxMsgSize is zmq_max_msg_size's default: 4 MiB.
const DefaultMaxMsgSize = 4 << 20

// DefaultOptions are fedmsg's shipped socket settings.
func DefaultOptions() Options {
	return Options{
		IOThreads:         1,
		Linger:            time.Second,
		ReconnectIvl:      100 * time.Millisecond,
		ReconnectIvlMax:   time.Second,
		TCPKeepalive:      1,
		TCPKeepaliveCnt:   3,
		TCPKeepaliveIdle:  60,
		TCPKeepaliveIntvl: 5,
		MaxMsgSize:        DefaultMaxMsgSize,
		SubscriberReady:   500 * time.Millisecond,
	}
}

// Validate reports every option that cannot work, each by name.
func (o Options) Validate() error {
	var errs []error
	if len(o.Bind) > 0 && len(o.Connect) > 0 {
		errs = append(errs, errors.New("zmq: a publisher either binds (endpoints) or connects (active, relay_inbound), not both"))
	}
	if o.HighWaterMark < 0 {
		errs = append(errs, fmt.Errorf("zmq: high_water_mark must be >= 0, got %d", o.HighWaterMark))
	}
	if o.IOThreads < 1 {
		errs = append(errs, fmt.Errorf("zmq: io_threads must be >= 1, got %d", o.IOThreads))
	}
	if o.MaxMsgSize <= 0 {
		errs = append(errs, fmt.Errorf("zmq: zmq_max_msg_size must be > 0, got %d", o.MaxMsgSize))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"zmq_linger", o.Linger}, {"zmq_reconnect_ivl", o.ReconnectIvl}, {"zmq_reconnect_ivl_max", o.ReconnectIvlMax}, {"post_init_sleep", o.SubscriberReady}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("zmq: %s must be >= 0, got %v", d.name, d.v))
		}
	}
	return errors.Join(errs...)
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}
