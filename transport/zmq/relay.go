package zmq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	zmq4 "github.com/pebbe/zmq4"
)

// Relay is fedmsg-relay: a SUB bound on relay_inbound, a PUB bound on
// relay_outbound, and every well-formed message forwarded as the same two
// frames, byte for byte (Python's relay re-serialises the body; ours does
// not). Malformed input is dropped and counted, never fatal.
type Relay struct {
	opts     Options
	zctx     *zmq4.Context
	in, out  *zmq4.Socket
	inAddrs  []string
	outAddr  string
	stats    Stats
	closeMu  sync.Mutex
	released bool
}

// NewRelay binds the inbound SUB on every relay_inbound endpoint (a host
// name binds each of its IPv4 addresses) and the outbound PUB on the first
// relay_outbound endpoint that binds.
func NewRelay(o Options, inbound, outbound []string) (*Relay, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.MaxMsgSize == 0 {
		o.MaxMsgSize = DefaultMaxMsgSize
	}
	if len(inbound) == 0 {
		return nil, fmt.Errorf("%w for relay_inbound: the list is empty", ErrNoEndpoint)
	}
	zctx, err := newContext(o)
	if err != nil {
		return nil, err
	}
	r := &Relay{opts: o, zctx: zctx}
	if err := r.bind(inbound, outbound); err != nil {
		r.release()
		return nil, err
	}
	return r, nil
}

func (r *Relay) bind(inbound, outbound []string) error {
	var err error
	if r.in, err = newSocket(r.zctx, zmq4.SUB, r.opts); err != nil {
		return err
	}
	if err := r.in.SetSubscribe(""); err != nil {
		return fmt.Errorf("zmq: relay subscribe: %w", err)
	}
	// A timeout lets Run notice cancellation without a second socket.
	if err := r.in.SetRcvtimeo(pollInterval); err != nil {
		return fmt.Errorf("zmq: relay receive timeout: %w", err)
	}
	for _, ep := range inbound {
		addrs, err := RelayInboundAddrs(ep)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if err := r.in.Bind(a); err != nil {
				return fmt.Errorf("zmq: bind relay_inbound %s: %w", a, err)
			}
			r.inAddrs = append(r.inAddrs, lastEndpoint(r.in, a))
		}
	}
	if r.out, err = newSocket(r.zctx, zmq4.PUB, r.opts); err != nil {
		return err
	}
	// relay_outbound is bound as written (tcp://127.0.0.1:4001 stays on
	// loopback), unlike a service's publisher.
	r.outAddr, err = bindFirst(r.out, `endpoints["relay_outbound"]`, outbound, func(s string) string { return s })
	return err
}

// InboundAddrs are the endpoints the inbound SUB is bound on.
func (r *Relay) InboundAddrs() []string { return r.inAddrs }

// OutboundAddr is the endpoint the outbound PUB is bound on.
func (r *Relay) OutboundAddr() string { return r.outAddr }

// Stats counts forwarded and dropped messages.
func (r *Relay) Stats() *Stats { return &r.stats }

// Run forwards messages until ctx ends, then releases the sockets (waiting
// at most zmq_linger for queued output) and returns nil. It returns an error
// only when a socket fails for good.
func (r *Relay) Run(ctx context.Context) error {
	defer r.release()
	err := forwardFast(ctx, r.in, r.out, r.outAddr, r.opts, &r.stats)
	if errors.Is(err, errFastPathUnavailable) {
		r.opts.logger().Warn("relay: zero-copy path unavailable with this pebbe/zmq4; forwarding through copies")
		err = forward(ctx, r.in, r.out, r.outAddr, r.opts, &r.stats)
	}
	return err
}

var errFastPathUnavailable = errors.New("zmq: relay fast path unavailable")

// forward is the relay's portable loop: receive, check, send both frames unchanged.
// in must have a receive timeout so that ctx is looked at regularly.
func forward(ctx context.Context, in, out *zmq4.Socket, outAddr string, o Options, stats *Stats) error {
	log := o.logger()
	for ctx.Err() == nil {
		frames, err := in.RecvMessageBytes(0)
		if err != nil {
			if isAgain(err) {
				continue // receive timeout: look at ctx again
			}
			if zmq4.AsErrno(err) == zmq4.ETERM {
				return nil
			}
			return fmt.Errorf("zmq: relay receive: %w", err)
		}
		reason := checkFrames(frames, o.MaxMsgSize)
		stats.count(reason)
		if reason != DropNone {
			log.Debug("relay dropped malformed message", "reason", reason.String())
			continue
		}
		if _, err := out.SendBytes(frames[0], zmq4.SNDMORE); err != nil {
			return fmt.Errorf("zmq: relay send on %s: %w", outAddr, err)
		}
		if _, err := out.SendBytes(frames[1], 0); err != nil {
			return fmt.Errorf("zmq: relay send on %s: %w", outAddr, err)
		}
	}
	return nil
}

// isAgain reports EAGAIN: a receive timeout or an empty DONTWAIT read.
func isAgain(err error) bool {
	return zmq4.AsErrno(err) == zmq4.Errno(syscall.EAGAIN)
}

// release closes the sockets and terminates the context once.
func (r *Relay) release() {
	r.closeMu.Lock()
	defer r.closeMu.Unlock()
	if r.released {
		return
	}
	r.released = true
	if r.in != nil {
		r.in.Close()
	}
	if r.out != nil {
		r.out.Close()
	}
	done := make(chan struct{})
	go func() { r.zctx.Term(); close(done) }()
	select {
	case <-done:
	case <-time.After(r.opts.Linger + time.Second):
	}
}
