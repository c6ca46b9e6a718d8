// Package zmq is the ZeroMQ transport: fedmsg's two-frame PUB/SUB wire
// format over libzmq (pebbe/zmq4, cgo), and the relay. ZeroMQ cannot confirm
// or redeliver, so Ack and Nack are no-ops here.
package zmq

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	zmq4 "github.com/pebbe/zmq4"

	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/transport"
)

// pollInterval bounds how long a receiving goroutine takes to notice that
// its context ended or the transport closed.
const pollInterval = 50 * time.Millisecond

// Transport publishes on one socket (bound or connected) and subscribes by
// connecting to every configured endpoint.
type Transport struct {
	opts  Options
	zctx  *zmq4.Context
	stats Stats
	seen  lastSeen // per endpoint, for monitoring (lastseen.go)

	// The publishing socket is an XPUB, which behaves as a PUB on the wire
	// but also hears subscriptions: that lets Publish wait until a relay
	// has subscribed instead of sleeping blindly (ZeroMQ's slow joiner).
	pubMu      sync.Mutex
	pub        *zmq4.Socket
	pubAddr    string
	subscribed bool
	readyBy    time.Time

	closeOnce sync.Once
	closed    chan struct{} // closed when Close starts
	released  chan struct{} // closed when Close has released everything
	subs      sync.WaitGroup
}

var _ transport.Transport = (*Transport)(nil)

// New creates the transport and, when Bind or Connect is set, its publishing
// socket, so a busy or malformed endpoint is reported at once.
func New(o Options) (*Transport, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.MaxMsgSize == 0 {
		o.MaxMsgSize = DefaultMaxMsgSize
	}
	zctx, err := newContext(o)
	if err != nil {
		return nil, err
	}
	t := &Transport{opts: o, zctx: zctx, closed: make(chan struct{}), released: make(chan struct{})}
	if len(o.Bind) > 0 || len(o.Connect) > 0 {
		if err := t.openPublisher(); err != nil {
			zctx.Term()
			return nil, err
		}
	}
	return t, nil
}

func (t *Transport) openPublisher() error {
	s, err := newSocket(t.zctx, zmq4.XPUB, t.opts)
	if err != nil {
		return err
	}
	var addr string
	if len(t.opts.Bind) > 0 {
		key := t.opts.BindKey
		if key == "" {
			key = "endpoints"
		}
		addr, err = bindFirst(s, key, t.opts.Bind, PublisherBindAddr)
	} else {
		addr, err = connectFirst(s, "relay_inbound", t.opts.Connect)
	}
	if err != nil {
		s.Close()
		return err
	}
	t.pub, t.pubAddr = s, addr
	t.readyBy = time.Now().Add(t.opts.SubscriberReady)
	return nil
}

// Capabilities: ZeroMQ PUB/SUB keeps one publisher's order and nothing else.
func (t *Transport) Capabilities() transport.Capabilities {
	return transport.Capabilities{Ordered: true}
}

// Stats counts received and dropped messages of every subscription.
func (t *Transport) Stats() *Stats { return &t.stats }

// PublisherAddr is the endpoint the publishing socket bound or connected.
func (t *Transport) PublisherAddr() string { return t.pubAddr }

// Publish sends each message as the two frames topic and body. ZeroMQ gives
// no confirmation: nil means handed to libzmq.
func (t *Transport) Publish(ctx context.Context, msgs ...*transport.Message) error {
	t.pubMu.Lock()
	defer t.pubMu.Unlock()
	if t.isClosed() {
		return transport.ErrClosed
	}
	if t.pub == nil {
		return errors.New("zmq: no publisher: set endpoints for this name, or active with relay_inbound")
	}
	if err := t.awaitSubscriber(ctx); err != nil {
		return err
	}
	for _, m := range msgs {
		if _, err := t.pub.SendBytes([]byte(m.Topic), zmq4.SNDMORE|zmq4.DONTWAIT); err != nil {
			return fmt.Errorf("zmq: publish %q on %s: %w", m.Topic, t.pubAddr, err)
		}
		if _, err := t.pub.SendBytes(m.Body, zmq4.DONTWAIT); err != nil {
			return fmt.Errorf("zmq: publish %q on %s: %w", m.Topic, t.pubAddr, err)
		}
	}
	t.drainSubscriptions()
	return nil
}

// WaitForSubscriber blocks until a subscriber has announced itself to the
// publishing socket, ctx ends, or the post_init_sleep allowance runs out;
// it reports whether a subscriber was seen.
func (t *Transport) WaitForSubscriber(ctx context.Context) bool {
	t.pubMu.Lock()
	defer t.pubMu.Unlock()
	if t.pub == nil {
		return false
	}
	_ = t.awaitSubscriber(ctx)
	return t.subscribed
}

// awaitSubscriber waits, once, for the first subscription message on the
// XPUB. Called with pubMu held.
func (t *Transport) awaitSubscriber(ctx context.Context) error {
	if t.subscribed || time.Now().After(t.readyBy) {
		return nil
	}
	poller := zmq4.NewPoller()
	poller.Add(t.pub, zmq4.POLLIN)
	for !t.subscribed {
		wait := time.Until(t.readyBy)
		if wait <= 0 {
			t.opts.logger().Warn("no subscriber yet; messages published now may be lost", "endpoint", t.pubAddr)
			t.readyBy = time.Time{}
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		polled, err := poller.Poll(min(wait, pollInterval))
		if err != nil {
			return fmt.Errorf("zmq: wait for subscriber on %s: %w", t.pubAddr, err)
		}
		if len(polled) > 0 {
			t.drainSubscriptions()
		}
	}
	return nil
}

// drainSubscriptions reads the subscription notices an XPUB queues, so they
// never pile up. Called with pubMu held.
func (t *Transport) drainSubscriptions() {
	for {
		b, err := t.pub.RecvBytes(zmq4.DONTWAIT)
		if err != nil {
			return
		}
		if len(b) > 0 && b[0] == 1 {
			t.subscribed = true
		}
	}
}

// Subscribe connects one SUB socket per endpoint and delivers well-formed
// messages whose topic matches one of patterns (none: everything). Patterns
// are message.Pattern, as on every transport: a plain prefix, or an fnmatch
// glob. The SUB sockets subscribe to each pattern's Prefix() and globs are
// then checked in-process, so a glob means the same here as on STOMP.
// Malformed input is dropped and counted in Stats.
func (t *Transport) Subscribe(ctx context.Context, patterns ...string) (<-chan *transport.Delivery, error) {
	if t.isClosed() {
		return nil, transport.ErrClosed
	}
	if len(t.opts.Subscribe) == 0 {
		return nil, errors.New("zmq: nothing to subscribe to: endpoints is empty")
	}
	compiled := make([]message.Pattern, 0, len(patterns))
	for _, p := range patterns {
		c, err := message.CompilePattern(p)
		if err != nil {
			return nil, fmt.Errorf("zmq: subscribe: %w", err)
		}
		compiled = append(compiled, c)
	}
	prefixes := subscriptionPrefixes(compiled)
	// Only globs need a second look: ZeroMQ's own filter is exactly a
	// prefix pattern's meaning.
	var filter []message.Pattern
	for _, c := range compiled {
		if c.Glob() {
			filter = compiled
			break
		}
	}
	socks := make([]*zmq4.Socket, 0, len(t.opts.Subscribe))
	closeAll := func() {
		for _, s := range socks {
			s.Close()
		}
	}
	for _, ep := range t.opts.Subscribe {
		s, err := newSocket(t.zctx, zmq4.SUB, t.opts)
		if err != nil {
			closeAll()
			return nil, err
		}
		socks = append(socks, s)
		for _, p := range prefixes {
			if err := s.SetSubscribe(p); err != nil {
				closeAll()
				return nil, fmt.Errorf("zmq: subscribe %q: %w", p, err)
			}
		}
		if err := s.Connect(ep); err != nil {
			closeAll()
			return nil, fmt.Errorf("zmq: connect to endpoint %s: %w", ep, err)
		}
	}
	out := make(chan *transport.Delivery, 256)
	t.subs.Add(1)
	go t.receive(ctx, socks, t.opts.Subscribe, filter, out)
	return out, nil
}

// subscriptionPrefixes is what the SUB sockets subscribe to for patterns:
// each one's Prefix(), without duplicates; just "" when any prefix is ""
// (it selects everything) or there are no patterns.
func subscriptionPrefixes(patterns []message.Pattern) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range patterns {
		if p.Prefix() == "" {
			return []string{""}
		}
		if !seen[p.Prefix()] {
			seen[p.Prefix()] = true
			out = append(out, p.Prefix())
		}
	}
	if len(out) == 0 {
		return []string{""}
	}
	return out
}

// receive owns socks until ctx ends or the transport closes. When filter
// is not nil, only topics matching one of its patterns are delivered.
func (t *Transport) receive(ctx context.Context, socks []*zmq4.Socket, endpoints []string, filter []message.Pattern, out chan<- *transport.Delivery) {
	defer t.subs.Done()
	defer close(out)
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	poller := zmq4.NewPoller()
	source := make(map[*zmq4.Socket]string, len(socks))
	for i, s := range socks {
		poller.Add(s, zmq4.POLLIN)
		source[s] = endpoints[i]
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.closed:
			return
		default:
		}
		// Let the goroutines this loop just handed messages to run before
		// the blocking poll below: a goroutine readied on this P would
		// otherwise wait for the scheduler to take the P back from the
		// cgo call, which adds up to milliseconds of latency (p99).
		runtime.Gosched()
		polled, err := poller.Poll(pollInterval)
		if err != nil {
			if zmq4.AsErrno(err) == zmq4.ETERM {
				return
			}
			t.opts.logger().Warn("zmq poll failed", "err", err)
			continue
		}
		for _, p := range polled {
			for {
				frames, err := p.Socket.RecvMessageBytes(zmq4.DONTWAIT)
				if err != nil {
					break
				}
				// Not for this subscription: ZeroMQ passed it on the
				// glob's prefix only. Not counted, as ZeroMQ's own
				// filtering is not.
				if filter != nil && !message.MatchAny(filter, string(frames[0])) {
					continue
				}
				if reason := checkFrames(frames, t.opts.MaxMsgSize); reason != DropNone {
					t.stats.count(reason)
					t.opts.logger().Debug("dropped malformed message", "endpoint", source[p.Socket], "reason", reason.String())
					continue
				}
				t.stats.count(DropNone)
				t.seen.touch(source[p.Socket])
				d := transport.NewDelivery(&transport.Message{Topic: string(frames[0]), Body: frames[1]}, source[p.Socket], nil)
				select {
				case out <- d:
				case <-ctx.Done():
					return
				case <-t.closed:
					return
				}
			}
		}
	}
}

func (t *Transport) isClosed() bool {
	select {
	case <-t.closed:
		return true
	default:
		return false
	}
}

// Close stops every subscription, flushes the publisher within its linger
// and releases the ZeroMQ context, giving up when ctx ends.
func (t *Transport) Close(ctx context.Context) error {
	t.closeOnce.Do(func() {
		close(t.closed)
		go func() {
			defer close(t.released)
			t.subs.Wait()
			t.pubMu.Lock()
			if t.pub != nil {
				t.pub.Close()
				t.pub = nil
			}
			t.pubMu.Unlock()
			t.zctx.Term()
		}()
	})
	select {
	case <-t.released:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("zmq: close: %w", ctx.Err())
	}
}
