package stomp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
	"github.com/gofedmsg/fedmsg/internal/brokerstats"
	"github.com/gofedmsg/fedmsg/internal/retry"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/transport"
)

const (
	// connectTimeout bounds one attempt: TCP, TLS and CONNECT/CONNECTED.
	// A frozen broker still completes TCP handshakes (the kernel does),
	// so without it an attempt could wait forever.
	connectTimeout = 5 * time.Second
	// subscribeWait bounds how long Subscribe waits for the broker to
	// receipt the subscription; past it the channel is returned anyway
	// and the subscription is made on the next connection.
	subscribeWait = 10 * time.Second
	// disconnectWait bounds the polite DISCONNECT on Close.
	disconnectWait = time.Second
	// subBuffer is how many deliveries wait between the connection and a
	// subscription's channel before the connection's reader waits.
	subBuffer = 64
)

// hooks let this package's tests observe connection events.
type hooks struct {
	connected func(addr string, f flavor)
	lost      func(addr string, err error)
}

// Transport is a STOMP 1.2 transport. It is safe for concurrent use.
type Transport struct {
	o     Options
	hooks hooks

	ctx    context.Context // ends when Close starts
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	conn    *conn         // the live connection, nil while there is none
	connCh  chan struct{} // closed (and replaced) when a connection comes up
	lastErr error         // why the last attempt or connection failed
	subs    map[*subscription]struct{}

	pumps    sync.WaitGroup
	finished chan struct{}        // the connection manager and every pump ended
	ops      brokerstats.Counters // connection count and publish observer, for monitoring (ops.go)
}

var _ transport.Transport = (*Transport)(nil)

// New validates o and returns a transport that connects in the background;
// it never blocks on the network.
func New(o Options) (*Transport, error) {
	return newTransport(o, hooks{})
}

func newTransport(o Options, h hooks) (*Transport, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		o: o, hooks: h, ctx: ctx, cancel: cancel,
		connCh:   make(chan struct{}),
		subs:     map[*subscription]struct{}{},
		finished: make(chan struct{}),
	}
	go t.run()
	return t, nil
}

// Capabilities: publishing is confirmed by receipts and ordered (one
// connection, frames in order). Redelivery and durability come only with
// Options.Queue or Options.DurableName (ActiveMQ durable subscriptions,
// acked individually): plain topic subscriptions are the broker's
// transient queues.
func (t *Transport) Capabilities() transport.Capabilities {
	q := t.o.oneConsumer()
	return transport.Capabilities{Confirms: true, Ordered: true, Redelivery: q, Durable: q}
}

// run owns the connection: it connects (round robin over Addrs, backoff
// with jitter), re-subscribes every live subscription, waits for the
// connection to fail, and starts again until Close.
func (t *Transport) run() {
	defer close(t.finished)
	delay := t.o.ReconnectDelay
	next := 0
	for t.ctx.Err() == nil {
		addr := t.o.Addrs[next%len(t.o.Addrs)]
		next++
		c, err := t.connect(addr)
		if err != nil {
			t.setLastErr(err)
			t.o.Logger.Warn("stomp: connect failed", "addr", addr, "err", err, "retry_in", delay)
			if !retry.Sleep(t.ctx, retry.Jitter(delay)) {
				break
			}
			delay = t.grow(delay)
			continue
		}
		delay = t.o.ReconnectDelay
		t.o.Logger.Info("stomp: connected", "addr", addr, "server", c.server)
		t.ops.CountConnection()
		// Re-subscribe before the connection is handed to publishers:
		// frames go out in order, so a message published after the
		// reconnect cannot reach the broker before the subscriptions that
		// should receive it (a topic keeps nothing for a late subscriber).
		// Subscribe calls made meanwhile find no connection and are
		// subscribed here; the loop ends once none is left under the lock
		// that also publishes the connection.
		done := map[*subscription]bool{}
		for {
			t.mu.Lock()
			var todo []*subscription
			for s := range t.subs {
				if !done[s] {
					todo = append(todo, s)
				}
			}
			if len(todo) == 0 {
				t.conn = c
				t.lastErr = nil
				close(t.connCh)
				t.connCh = make(chan struct{})
				t.mu.Unlock()
				break
			}
			t.mu.Unlock()
			for _, s := range todo {
				done[s] = true
				_ = c.subscribe(s) // if the connection failed, the next one re-subscribes
			}
		}
		if t.hooks.connected != nil {
			t.hooks.connected(addr, c.flavor)
		}
		select {
		case <-c.dead:
		case <-t.ctx.Done():
			c.disconnect(disconnectWait)
		}
		t.mu.Lock()
		t.conn = nil
		t.mu.Unlock()
		c.loops.Wait()
		if t.ctx.Err() != nil {
			break
		}
		err = c.cause()
		t.setLastErr(err)
		t.o.Logger.Warn("stomp: connection lost", "addr", addr, "err", err, "retry_in", delay)
		if t.hooks.lost != nil {
			t.hooks.lost(addr, err)
		}
		if !retry.Sleep(t.ctx, retry.Jitter(delay)) {
			break
		}
		delay = t.grow(delay)
	}
	t.pumps.Wait()
}

func (t *Transport) setLastErr(err error) {
	t.mu.Lock()
	t.lastErr = err
	t.mu.Unlock()
}

// grow is fedmsg's backoff: times 1+2/len(Addrs), capped.
func (t *Transport) grow(d time.Duration) time.Duration {
	n := float64(len(t.o.Addrs))
	return min(time.Duration(float64(d)*(1+2/n)), t.o.MaxReconnectDelay)
}

// connect makes one session with addr: TCP, TLS when configured, then
// CONNECT and CONNECTED, all within connectTimeout and Close.
func (t *Transport) connect(addr string) (*conn, error) {
	ctx, cancel := context.WithTimeout(t.ctx, connectTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("stomp: dial %s: %w", addr, err)
	}
	// Deadlines follow ctx through the TLS handshake and CONNECT.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	c, err := t.handshake(ctx, addr, nc)
	if !stop() && err == nil {
		err = fmt.Errorf("stomp: connect to %s: %w", addr, ctx.Err())
	}
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	_ = c.nc.SetDeadline(time.Time{})
	c.start()
	return c, nil
}

func (t *Transport) handshake(ctx context.Context, addr string, nc net.Conn) (*conn, error) {
	if t.o.TLS != nil {
		cfg := t.o.TLS.Clone()
		if cfg.ServerName == "" {
			host, _, _ := net.SplitHostPort(addr)
			cfg.ServerName = host
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("stomp: TLS with %s: %w", addr, err)
		}
		nc = tc
	}
	// We send every HeartBeat and ask the broker for every HeartBeat/2:
	// brokers look for idleness once per period, so their gaps reach two
	// periods (ActiveMQ's first heart-beat comes after two), and asking
	// for half lets a silence of 2*HeartBeat mean a dead broker, safely.
	hbMs := t.o.HeartBeat.Milliseconds()
	hb, want := strconv.FormatInt(hbMs, 10), strconv.FormatInt((hbMs+1)/2, 10)
	// STOMP 1.2: CONNECT headers are not escaped (Validate refused line
	// breaks), so the frame is written as is.
	var b bytes.Buffer
	b.WriteString("CONNECT\naccept-version:1.2\nhost:" + t.o.Vhost + "\nheart-beat:" + hb + "," + want + "\n")
	login, pass := t.o.Login, t.o.Passcode
	if login == "" && pass == "" && !t.o.clientCert() {
		login, pass = "guest", "guest" // fedmsg's defaults
	}
	if login != "" || pass != "" {
		b.WriteString("login:" + login + "\npasscode:" + pass + "\n")
	}
	if t.o.DurableName != "" {
		// ActiveMQ keys durable subscriptions by client-id and name; other
		// brokers ignore the header (Subscribe then refuses the option).
		b.WriteString("client-id:" + t.o.DurableName + "\n")
	}
	b.WriteString("\n\x00")
	if _, err := nc.Write(b.Bytes()); err != nil {
		return nil, fmt.Errorf("stomp: CONNECT to %s: %w", addr, err)
	}
	dr := &deadlineReader{c: nc}
	fr := newFrameReader(dr)
	f, err := fr.read()
	if err != nil {
		return nil, fmt.Errorf("stomp: awaiting CONNECTED from %s: %w", addr, err)
	}
	switch f.Command {
	case frame.CONNECTED:
	case frame.ERROR:
		err := brokerError(addr, f)
		if t.o.DurableName != "" {
			// Most likely "Client: <name> already connected": ActiveMQ
			// refuses a second connection with one client-id, and after a
			// crash keeps the old one until it notices it is gone. The
			// reconnect loop retries with backoff.
			err = fmt.Errorf("%w (CONNECT sent client-id %q from stomp_durable_name: ActiveMQ refuses it while another connection, or one it has not yet noticed is gone, uses it; retrying)", err, t.o.DurableName)
		}
		return nil, err
	default:
		return nil, protoErr("%s from %s instead of CONNECTED", f.Command, addr)
	}
	if v := f.Header.Get(frame.Version); v != "1.2" {
		return nil, protoErr("%s answered STOMP version %q; only 1.2 was offered", addr, v)
	}
	c := &conn{
		t: t, nc: nc, addr: addr, rd: fr, dr: dr,
		server:    f.Header.Get(frame.Server),
		writeCh:   make(chan []writeItem, 64),
		dead:      make(chan struct{}),
		receipts:  map[string]receiptRef{},
		subIDs:    map[string]*subscription{},
		ofSub:     map[*subscription][]string{},
		queueSubs: map[*subscription]bool{},
	}
	c.flavor = detectFlavor(c.server)
	sx, sy, err := parseHeartBeat(f.Header.Get(frame.HeartBeat))
	if err != nil {
		t.o.Logger.Warn("stomp: ignoring the broker's heart-beat header", "addr", addr, "err", err)
	}
	if hbd := t.o.HeartBeat.Truncate(time.Millisecond); hbd > 0 {
		if sy > 0 {
			c.sendEvery = max(hbd, sy)
		}
		if sx > 0 {
			// A broker silent for two intervals is gone (see above; when
			// it cannot beat as often as HeartBeat, its own interval counts).
			dr.timeout = 2 * max(hbd, sx)
		}
	}
	return c, nil
}

// parseHeartBeat reads "sx,sy" of CONNECTED; absent means none.
func parseHeartBeat(h string) (sx, sy time.Duration, err error) {
	if h == "" {
		return 0, 0, nil
	}
	return frame.ParseHeartBeat(h)
}

// current returns the live connection, or nil.
func (t *Transport) current() *conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.conn
}

// waitConn returns a live connection, waiting for one within ctx.
func (t *Transport) waitConn(ctx context.Context) (*conn, error) {
	for {
		t.mu.Lock()
		closed, c, ch := t.closed, t.conn, t.connCh
		t.mu.Unlock()
		if closed {
			return nil, fmt.Errorf("stomp: %w", transport.ErrClosed)
		}
		if c != nil && !c.isDead() {
			return c, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			// The failure of the latest attempt, made while we waited.
			t.mu.Lock()
			last := t.lastErr
			t.mu.Unlock()
			if last != nil {
				return nil, fmt.Errorf("stomp: %w (%w): last failure: %w", transport.ErrNotConnected, ctx.Err(), last)
			}
			return nil, fmt.Errorf("stomp: %w (%w)", transport.ErrNotConnected, ctx.Err())
		case <-t.ctx.Done():
			return nil, fmt.Errorf("stomp: %w", transport.ErrClosed)
		}
	}
}

// Publish sends msgs in order to /topic/<topic>, persistent, each with a
// receipt, and returns nil once the broker has receipted all of them. The
// frames are pipelined: all are written, then the receipts awaited. When
// the connection fails first, the unconfirmed messages are sent again on
// the next connection (so a message may arrive twice, never zero times
// once confirmed), until ctx ends.
func (t *Transport) Publish(ctx context.Context, msgs ...*transport.Message) error {
	return t.ops.Timed(time.Now(), len(msgs), t.publish(ctx, msgs))
}

func (t *Transport) publish(ctx context.Context, msgs []*transport.Message) error {
	if t.isClosed() {
		return fmt.Errorf("stomp: publish: %w", transport.ErrClosed)
	}
	items := make([]writeItem, len(msgs))
	for i, m := range msgs {
		it, err := sendFrame(m)
		if err != nil {
			return err
		}
		items[i] = it
	}
	done := make([]bool, len(msgs))
	var lastErr error
	for {
		var todo []int
		for i, ok := range done {
			if !ok {
				todo = append(todo, i)
			}
		}
		if len(todo) == 0 {
			return nil
		}
		c, err := t.waitConn(ctx)
		if err != nil {
			if lastErr != nil && !errors.Is(err, transport.ErrClosed) {
				err = fmt.Errorf("%w; before: %w", err, lastErr)
			}
			return fmt.Errorf("stomp: publish: %d of %d messages unconfirmed: %w", len(todo), len(msgs), err)
		}
		batch := make([]writeItem, len(todo))
		for j, i := range todo {
			batch[j] = items[i]
		}
		p := newPending(len(batch))
		if err := c.request(ctx, batch, p); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("stomp: publish: %d of %d messages unconfirmed: %w", len(todo), len(msgs), ctx.Err())
			}
			lastErr = err
			continue
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			c.forget(batch)
			p.confirmed(done, todo)
			n := 0
			for _, ok := range done {
				if !ok {
					n++
				}
			}
			return fmt.Errorf("stomp: publish: no receipt for %d of %d messages from %s: %w", n, len(msgs), c.addr, ctx.Err())
		case <-t.ctx.Done():
			c.forget(batch)
			return fmt.Errorf("stomp: publish: %w", transport.ErrClosed)
		}
		p.confirmed(done, todo)
		if p.err != nil {
			lastErr = p.err
		}
	}
}

// sendFrame builds the SEND frame of m (without receipt). The body is
// referenced, not copied: Publish keeps it until the receipt.
func sendFrame(m *transport.Message) (writeItem, error) {
	if m == nil {
		return writeItem{}, fmt.Errorf("stomp: publish: %w: nil message", transport.ErrBadMessage)
	}
	if why := badTopic(m.Topic); why != "" {
		return writeItem{}, fmt.Errorf("stomp: publish %q: %w: %s", m.Topic, transport.ErrBadMessage, why)
	}
	if len(m.Body) > maxBody {
		return writeItem{}, fmt.Errorf("stomp: publish %q: %w: body of %d bytes beyond %d", m.Topic, transport.ErrBadMessage, len(m.Body), maxBody)
	}
	b := make([]byte, 0, 128+len(m.Topic)+len(m.ID))
	b = append(b, "SEND\n"...)
	b = appendHeader(b, frame.Destination, topicDestination(m.Topic))
	b = append(b, "content-type:application/json\ncontent-length:"...)
	b = strconv.AppendInt(b, int64(len(m.Body)), 10)
	b = append(b, "\npersistent:true\n"...)
	if m.ID != "" {
		b = appendHeader(b, idHeader, m.ID)
	}
	if len(m.Headers) > 0 {
		for _, k := range slices.Sorted(maps.Keys(m.Headers)) {
			v := m.Headers[k]
			if k == "" || reservedHeaders[k] {
				continue // never let metadata change how the broker treats the frame
			}
			if bytes.IndexByte([]byte(k+v), 0) >= 0 {
				return writeItem{}, fmt.Errorf("stomp: publish %q: %w: header %q holds NUL", m.Topic, transport.ErrBadMessage, k)
			}
			b = appendHeader(b, k, v)
		}
	}
	return writeItem{head: b, body: m.Body}, nil
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// subscription is one Subscribe call.
type subscription struct {
	t        *Transport
	patterns []message.Pattern
	in       chan *transport.Delivery // from the connection's reader
	out      chan *transport.Delivery // to the caller; closed by pump
	done     chan struct{}            // closed when the subscription ends
	ready    chan struct{}            // closed once the broker receipted it
	readyOne sync.Once
	failed   chan struct{} // closed when the subscription cannot be made
	failErr  error         // why, set before failed is closed
	failOne  sync.Once
}

func (s *subscription) markReady() { s.readyOne.Do(func() { close(s.ready) }) }

// fail ends s for a reason retrying cannot cure (a configuration the
// broker cannot honour): Subscribe returns err, or the channel closes.
func (s *subscription) fail(err error) {
	s.failOne.Do(func() {
		s.failErr = err
		close(s.failed)
	})
}

// consumerName names the queue consumer in logs and errors: the queue
// (stomp_queue) or the durable subscription (stomp_durable_name).
func (t *Transport) consumerName() string {
	if t.o.DurableName != "" {
		return fmt.Sprintf("durable subscription %q (stomp_durable_name)", t.o.DurableName)
	}
	return fmt.Sprintf("queue %q (stomp_queue)", t.o.Queue)
}

// Subscribe delivers messages whose topic matches one of patterns
// (message.Pattern; none or "" = all). The broker is subscribed to a
// superset in its own wildcard syntax and the patterns filter in-process,
// so the semantics are the same as on every transport. Subscribe returns
// once the broker has receipted the subscription (or after subscribeWait
// when no broker is reachable: the subscription is then made on the next
// connection). The channel stays open across reconnects and is closed
// when ctx ends or the transport is closed.
func (t *Transport) Subscribe(ctx context.Context, patterns ...string) (<-chan *transport.Delivery, error) {
	var ps []message.Pattern
	for _, p := range patterns {
		cp, err := message.CompilePattern(p)
		if err != nil {
			return nil, fmt.Errorf("stomp: subscribe: %w", err)
		}
		if p == "" { // matches everything: the other patterns add nothing
			ps = nil
			break
		}
		ps = append(ps, cp)
	}
	s := &subscription{
		t: t, patterns: ps,
		in:     make(chan *transport.Delivery, subBuffer),
		out:    make(chan *transport.Delivery),
		done:   make(chan struct{}),
		ready:  make(chan struct{}),
		failed: make(chan struct{}),
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, fmt.Errorf("stomp: subscribe: %w", transport.ErrClosed)
	}
	t.subs[s] = struct{}{}
	c := t.conn
	t.pumps.Add(1)
	t.mu.Unlock()
	go s.pump(ctx)
	if c != nil {
		_ = c.subscribe(s) // on failure the next connection subscribes s
	}
	timer := time.NewTimer(subscribeWait)
	defer timer.Stop()
	select {
	case <-s.ready:
	case <-s.failed:
		return nil, s.failErr // pump ends the subscription
	case <-ctx.Done():
	case <-t.ctx.Done():
	case <-timer.C:
		t.o.Logger.Warn("stomp: subscription not confirmed yet; it will be made when a broker is reachable")
	}
	return s.out, nil
}

// pump hands deliveries to the caller and ends the subscription.
func (s *subscription) pump(ctx context.Context) {
	t := s.t
	defer t.pumps.Done()
	defer close(s.out)
	defer t.unsubscribe(s)
	for {
		select {
		case d := <-s.in:
			select {
			case s.out <- d:
			case <-s.failed:
				return
			case <-ctx.Done():
				return
			case <-t.ctx.Done():
				return
			}
		case <-s.failed:
			return
		case <-ctx.Done():
			return
		case <-t.ctx.Done():
			return
		}
	}
}

func (t *Transport) unsubscribe(s *subscription) {
	close(s.done)
	t.mu.Lock()
	delete(t.subs, s)
	c := t.conn
	t.mu.Unlock()
	if c != nil && t.ctx.Err() == nil {
		c.unsubscribe(s)
	}
}

// dispatch routes a MESSAGE frame from c. It runs on c's reader and waits
// while a subscription's buffer is full: TCP then slows the broker down.
func (t *Transport) dispatch(c *conn, f *frame.Frame) {
	subID := f.Header.Get(frame.Subscription)
	m, ok := messageFromFrame(f, c.flavor)
	source := "stomp://" + c.addr + f.Header.Get(frame.Destination)
	if !t.o.oneConsumer() {
		c.mu.Lock()
		s := c.subIDs[subID]
		c.mu.Unlock()
		if s == nil || !ok || !message.MatchAny(s.patterns, m.Topic) {
			return
		}
		c.deliver(s, transport.NewDelivery(m, source, nil))
		return
	}
	// Queue and durable modes: one consumer, acked individually, shared
	// by the local subscriptions.
	c.mu.Lock()
	ours := subID != "" && subID == c.queueID
	c.mu.Unlock()
	if !ours {
		return // an ended consumer's: unacked, the broker redelivers it later
	}
	st := &queueSettle{c: c, ackID: f.Header.Get(frame.Ack)}
	if !ok {
		t.o.Logger.Warn("stomp: dropping a queued message without a topic destination",
			"destination", f.Header.Get(frame.Destination))
		_ = st.send(t.ctx, frame.ACK)
		return
	}
	var targets []*subscription
	t.mu.Lock()
	for s := range t.subs {
		if message.MatchAny(s.patterns, m.Topic) {
			targets = append(targets, s)
		}
	}
	t.mu.Unlock()
	if len(targets) == 0 {
		_ = st.send(t.ctx, frame.ACK) // not for us: acked and dropped
		return
	}
	st.left, st.n = len(targets), len(targets)
	for i, s := range targets {
		mm := m
		if i > 0 { // each subscription owns its copy
			mm = &transport.Message{Topic: m.Topic, ID: m.ID, Body: bytes.Clone(m.Body), Headers: maps.Clone(m.Headers)}
		}
		c.deliver(s, transport.NewDelivery(mm, source, &queueSettler{st}))
	}
}

func (c *conn) deliver(s *subscription, d *transport.Delivery) {
	select {
	case s.in <- d:
	case <-s.done:
	case <-c.dead:
	}
}

// queueSettle settles one queued message delivered to one or more local
// subscriptions: the broker hears once all have settled. Any transient
// Nack requeues it (NACK); otherwise it is ACKed, except when every one
// Nacked with ErrPermanent: then RabbitMQ gets NACK with requeue:false
// (the queue's dead-letter exchange if any, else discarded) and other
// brokers an ACK, since their NACK semantics vary (ActiveMQ sends NACKed
// messages to its DLQ at once).
//
// On ActiveMQ (a queue, or a durable subscription: Options.DurableName)
// a transient Nack is not a NACK either: ActiveMQ's NACK would move the
// message to its DLQ, so instead the connection is ended, and ActiveMQ
// gives every unacknowledged message to the next connection (the Nacked
// one included; those delivered after it and not yet acked come again
// too, as at-least-once allows).
type queueSettle struct {
	c     *conn
	ackID string

	mu                   sync.Mutex
	left, n              int // deliveries not yet settled, and in all
	transient, permanent int
}

func (st *queueSettle) settle(ctx context.Context, cause error, nack bool) error {
	st.mu.Lock()
	st.left--
	if nack {
		if errors.Is(cause, transport.ErrPermanent) {
			st.permanent++
		} else {
			st.transient++
		}
	}
	left, transient, allPermanent := st.left, st.transient, st.permanent == st.n
	st.mu.Unlock()
	switch {
	case left > 0:
		return nil
	case transient > 0 && st.c.flavor == flavorActiveMQ:
		// Ending the connection is what makes ActiveMQ redeliver (see
		// above); on a connection already gone that is done.
		st.c.fail(fmt.Errorf("stomp: %w from %s: a delivery of %s was Nacked; reconnecting so that ActiveMQ redelivers it",
			ErrRedeliver, st.c.addr, st.c.t.consumerName()))
		return nil
	case transient > 0:
		return st.send(ctx, frame.NACK)
	case allPermanent && st.c.flavor == flavorRabbitMQ:
		return st.send(ctx, frame.NACK, "requeue", "false")
	default:
		return st.send(ctx, frame.ACK)
	}
}

func (st *queueSettle) send(ctx context.Context, cmd string, extra ...string) error {
	if st.ackID == "" {
		return fmt.Errorf("stomp: %s: %w: the broker gave the message no ack header", cmd, ErrProtocol)
	}
	head := encodeHead(cmd, append([]string{frame.Id, st.ackID}, extra...)...)
	if err := st.c.enqueue(ctx, []writeItem{{head: head}}); err != nil {
		return fmt.Errorf("stomp: %s on %s: %w (the broker redelivers the message): %w", cmd, st.c.addr, transport.ErrNotConnected, err)
	}
	return nil
}

type queueSettler struct{ st *queueSettle }

func (q *queueSettler) Ack(ctx context.Context) error { return q.st.settle(ctx, nil, false) }

func (q *queueSettler) Nack(ctx context.Context, cause error) error {
	return q.st.settle(ctx, cause, true)
}

// Close ends every subscription and the connection (a polite DISCONNECT
// first, so the broker requeues unsettled messages at once). Publish
// calls in flight return ErrClosed. Close is bounded by ctx and
// idempotent; a later Close waits again for the same end.
func (t *Transport) Close(ctx context.Context) error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.cancel()
	select {
	case <-t.finished:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stomp: close: %w", ctx.Err())
	}
}
