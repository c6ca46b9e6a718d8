// Package amqp is gofedmsg's AMQP 0-9-1 transport (RabbitMQ), on
// github.com/rabbitmq/amqp091-go.
//
// Behaviour, precisely:
//
//   - One connection at a time, to the first reachable URL of
//     Options.URLs; after a loss the next URL is tried first. Each URL
//     gets one attempt per round; between rounds the transport waits with
//     exponential backoff and jitter. New returns at once: the
//     connection is made in the background.
//   - Publish sends each message to Options.Exchange with the topic as
//     routing key, the body verbatim, msg_id as message_id, content type
//     application/json, delivery mode persistent and the headers as string
//     fields of the header table, on one channel in confirm mode. All of a
//     call's messages are sent before their confirms are awaited. It
//     returns nil once the broker confirmed every one (Confirms); a
//     basic.nack is an error wrapping ErrNacked. When the connection is
//     lost before the confirms came, the unconfirmed messages are sent
//     again, in order, on the next connection (a message may then arrive
//     twice). Without a connection Publish waits for one until its ctx
//     ends, then fails with an error wrapping transport.ErrNotConnected.
//     mandatory is not set: a topic nobody listens to is not an error in
//     fedmsg.
//   - Subscribe binds a queue to the exchange with topic binding keys
//     that select a superset of the patterns (bindingKeys) and filters
//     with message.Pattern in-process, so patterns mean the same on every
//     transport. Deliveries are settled by the application (manual acks,
//     basic.qos Options.Prefetch): Ack is basic.ack, Nack basic.nack with
//     requeue (Redelivery), Nack(transport.ErrPermanent) without requeue.
//     Messages no subscription matches are acked and dropped.
//   - Without Options.Queue each subscription has its own exclusive,
//     auto-delete, server-named queue, gone with the subscription or the
//     connection. With Options.Queue the subscriptions of a transport
//     share that durable queue (Durable, with persistent messages): its
//     bindings stay after the subscriptions end, so it keeps collecting
//     while the process is away, and a message a subscription had not
//     yet received when it ended is requeued, not dropped. Subscriptions of
//     a named queue are fed by one consumer, in turn: one that is not read
//     holds back the others once it has a message waiting. The queue exists
//     from the first Subscribe on; a transport that only publishes does not
//     declare it.
//   - After a connection or channel loss the topology is declared again
//     (exchange, queues, bindings, qos) and consuming resumes; the
//     subscription channels stay open. A delivery received on a channel
//     that has since died cannot be settled (delivery tags are per
//     channel): its Ack and Nack fail with ErrStaleDelivery and the broker
//     redelivers the message.
//   - Subscribe returns once the subscription is bound on the broker. When
//     no broker is reachable (every URL failed in the last round) it
//     returns at once and the subscription is bound when a connection
//     comes; messages published meanwhile reach it only with a named
//     queue that already existed.
//   - Options.Format "fedora-messaging" (amqp_format) changes what is on
//     the wire, as fedora-messaging and fedmsg-migration-tools expect it
//     (spec §10.1): the body is json.dumps of the envelope's msg (Python's
//     ", " and ": " separators, keys sorted); content_type
//     application/json, content_encoding utf-8, delivery_mode 2,
//     message_id the msg_id; headers fedora_messaging_schema
//     "base.message", sent-at (UTC, seconds, +00:00) and
//     fedora_messaging_severity 20, plus the envelope's own "headers"
//     object and the message's Headers. The rest of the envelope (every
//     field but msg: topic, timestamp, msg_id, i, username, crypto,
//     signature, certificate, ...) rides in one header, x-fedmsg-envelope,
//     as its canonical JSON. A subscriber in this format rebuilds the
//     envelope as canonical JSON of that header's object plus the msg
//     decoded from the body: byte for byte the envelope published (fedmsg
//     publishes canonical JSON), so signatures verify. A message without
//     x-fedmsg-envelope (from a real fedora-messaging publisher) becomes
//     an envelope as fedmsg-migration-tools builds one (see
//     fromFedoraMessaging). A delivery that cannot become an envelope is
//     rejected without requeue and logged. Both ends of a route must use
//     the same format: one publishing envelopes verbatim to a subscriber
//     in fedora-messaging format delivers them wrapped as msg.
//   - Close refuses new work, lets in-flight publishes collect their
//     confirms (at most drainLimit, and only while its ctx lasts), then
//     closes the connection; subscription channels close.
package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/gofedmsg/fedmsg/internal/brokerstats"
	"github.com/gofedmsg/fedmsg/internal/retry"
	"github.com/gofedmsg/fedmsg/transport"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrNacked: the broker refused a message with basic.nack.
	ErrNacked = errors.New("amqp: broker refused the message")
	// ErrStaleDelivery: a delivery's channel died before it was settled;
	// the broker redelivers the message. It also wraps transport.ErrClosed.
	ErrStaleDelivery = errors.New("amqp: the delivery's channel is gone, the broker will redeliver it")
)

// Timeouts of the network steps that have no ctx of their own.
const (
	dialTimeout      = 5 * time.Second  // TCP connect
	handshakeTimeout = 10 * time.Second // TLS + AMQP handshake, then cleared by amqp091-go
	closeTimeout     = 2 * time.Second  // connection.close-ok from a broker that may be gone
	drainLimit       = 5 * time.Second  // how long Close waits for in-flight confirms
)

// Transport is an AMQP 0-9-1 transport. It is safe for concurrent use.
type Transport struct {
	opts     Options
	urls     []brokerURL
	exchange string
	log      *slog.Logger

	closing   chan struct{} // closed when Close starts: no new work
	hurry     chan struct{} // closed when a Close ctx ended: stop draining
	done      chan struct{} // closed when every goroutine has ended
	life      context.Context
	stopLife  context.CancelFunc // ends the connection manager and its dials
	closeOnce sync.Once
	hurryOnce sync.Once
	wg        sync.WaitGroup // manager, consumers, subscriptions
	inflight  sync.WaitGroup // Publish calls

	mu      sync.Mutex
	closed  bool
	sess    *session      // the live connection; nil when there is none
	up      chan struct{} // closed while sess != nil
	down    chan struct{} // closed once a whole round of URLs failed, until the next connection
	lastErr error         // why the last connection attempt or connection failed
	shared  *consumer     // the named queue's consumer (Options.Queue)

	// sendMu orders Send calls; lastSent is the latest Send's batch.
	sendMu   sync.Mutex
	lastSent *sentBatch

	fmCounter atomic.Int64         // "i" of envelopes built from plain fedora-messaging messages
	ops       brokerstats.Counters // connection count and publish observer, for monitoring (ops.go)
}

var _ transport.Transport = (*Transport)(nil)

// session is one AMQP connection and its publishing channel.
type session struct {
	conn      *amqp091.Connection
	wire      *coalescingConn  // under conn (and under TLS): batches writes
	pub       *amqp091.Channel // in confirm mode
	url       string           // redacted
	connLost  chan *amqp091.Error
	pubLost   chan *amqp091.Error
	dead      chan struct{} // closed once the manager has given the session up
	deathOnce sync.Once
}

func (s *session) kill() { s.deathOnce.Do(func() { close(s.dead) }) }

func (s *session) isDead() bool {
	select {
	case <-s.dead:
		return true
	default:
		return s.conn.IsClosed() || s.pub.IsClosed()
	}
}

// New validates o and starts connecting in the background; it does not
// wait for the broker.
func New(o Options) (*Transport, error) {
	urls, err := o.parse()
	if err != nil {
		return nil, err
	}
	if o.ReconnectDelay == 0 {
		o.ReconnectDelay = DefaultReconnectDelay
	}
	if o.MaxReconnectDelay == 0 {
		o.MaxReconnectDelay = max(DefaultMaxReconnectDelay, o.ReconnectDelay)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Transport{
		opts:     o,
		urls:     urls,
		exchange: o.Exchange,
		log:      log,
		closing:  make(chan struct{}),
		hurry:    make(chan struct{}),
		done:     make(chan struct{}),
		up:       make(chan struct{}),
		down:     make(chan struct{}),
	}
	if t.exchange == "" {
		t.exchange = DefaultExchange
	}
	t.life, t.stopLife = context.WithCancel(context.Background())
	t.wg.Add(1)
	go t.run()
	return t, nil
}

// Capabilities: confirms, redelivery and order always; durability only
// with a named queue (durable queue, persistent messages).
func (t *Transport) Capabilities() transport.Capabilities {
	return transport.Capabilities{Confirms: true, Redelivery: true, Ordered: true, Durable: t.opts.Queue != ""}
}

// ---- the connection manager ----

func (t *Transport) run() {
	defer t.wg.Done()
	next, failedInRound, rounds := 0, 0, 0
	for t.life.Err() == nil {
		u := t.urls[next]
		s, err := t.connect(u)
		if err != nil {
			if t.life.Err() != nil {
				return
			}
			// Loud once per outage, quiet while it lasts.
			level := slog.LevelWarn
			if rounds > 0 {
				level = slog.LevelDebug
			}
			t.log.Log(t.life, level, "amqp: connection failed", "url", u.redacted, "err", err)
			t.mu.Lock()
			t.lastErr = fmt.Errorf("%s: %w", u.redacted, err)
			t.mu.Unlock()
			next = (next + 1) % len(t.urls)
			if failedInRound++; failedInRound < len(t.urls) {
				continue // the next URL at once: failover, not backoff
			}
			failedInRound = 0
			t.mu.Lock()
			select {
			case <-t.down:
			default:
				close(t.down)
			}
			t.mu.Unlock()
			if !retry.Sleep(t.life, retry.Jitter(retry.Exponential(rounds, t.opts.ReconnectDelay, t.opts.MaxReconnectDelay))) {
				return
			}
			rounds++
			continue
		}
		failedInRound, rounds = 0, 0
		t.log.Info("amqp: connected", "url", u.redacted)
		t.ops.CountConnection()
		t.mu.Lock()
		t.sess = s
		close(t.up)
		select {
		case <-t.down:
			t.down = make(chan struct{})
		default:
		}
		t.mu.Unlock()

		var why error
		select {
		case e := <-s.connLost:
			why = lossReason("connection", e)
		case e := <-s.pubLost:
			why = lossReason("publishing channel", e)
		case <-t.life.Done():
			why = transport.ErrClosed
		}
		t.mu.Lock()
		t.sess = nil
		t.up = make(chan struct{})
		t.lastErr = fmt.Errorf("%s: %w", u.redacted, why)
		t.mu.Unlock()
		s.kill()
		// Closing a connection that is already gone only returns an error;
		// CloseDeadline keeps a broker that stopped answering from holding us.
		_ = s.conn.CloseDeadline(time.Now().Add(closeTimeout))
		if t.life.Err() != nil {
			return
		}
		t.log.Warn("amqp: connection lost", "url", u.redacted, "err", why)
		next = (next + 1) % len(t.urls)
		// A short jittered pause, so that every client of a broker that
		// just restarted does not come back in the same millisecond.
		if !retry.Sleep(t.life, retry.Jitter(t.opts.ReconnectDelay)) {
			return
		}
	}
}

func lossReason(what string, e *amqp091.Error) error {
	if e == nil {
		return fmt.Errorf("%s closed", what)
	}
	return fmt.Errorf("%s closed: %w", what, e)
}

// connect dials u and prepares the publishing side: a channel in confirm
// mode and the exchange.
func (t *Transport) connect(u brokerURL) (*session, error) {
	props := amqp091.NewConnectionProperties()
	props.SetClientConnectionName("gofedmsg")
	cfg := amqp091.Config{
		TLSClientConfig: tlsFor(u, t.opts.TLS),
		Properties:      props,
	}
	if external(u, t.opts.TLS) {
		cfg.SASL = []amqp091.Authentication{&amqp091.ExternalAuth{}}
	}
	// The dial follows the transport's life, and so does the handshake:
	// Close must not wait for a broker that accepted TCP and went silent.
	var stopWatch func() bool
	var wire *coalescingConn
	cfg.Dial = func(network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: dialTimeout}
		c, err := d.DialContext(t.life, network, addr)
		if err != nil {
			return nil, err
		}
		if err := c.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
			c.Close()
			return nil, err
		}
		stopWatch = context.AfterFunc(t.life, func() { c.Close() })
		wire = newCoalescingConn(c)
		return wire, nil
	}
	conn, err := amqp091.DialConfig(u.raw, cfg)
	if stopWatch != nil {
		stopWatch()
	}
	if err != nil {
		return nil, err
	}
	fail := func(step string, err error) (*session, error) {
		_ = conn.CloseDeadline(time.Now().Add(closeTimeout))
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	pub, err := conn.Channel()
	if err != nil {
		return fail("open publishing channel", err)
	}
	if err := pub.Confirm(false); err != nil {
		return fail("enable publisher confirms", err)
	}
	if err := t.declareExchange(pub); err != nil {
		return fail("exchange", err)
	}
	return &session{
		conn:     conn,
		wire:     wire,
		pub:      pub,
		url:      u.redacted,
		connLost: conn.NotifyClose(make(chan *amqp091.Error, 1)),
		pubLost:  pub.NotifyClose(make(chan *amqp091.Error, 1)),
		dead:     make(chan struct{}),
	}, nil
}

// declareExchange checks the broker's own amq.* exchanges (they cannot be
// declared) and declares any other as a durable topic exchange.
func (t *Transport) declareExchange(ch *amqp091.Channel) error {
	if strings.HasPrefix(t.exchange, "amq.") {
		if err := ch.ExchangeDeclarePassive(t.exchange, amqp091.ExchangeTopic, true, false, false, false, nil); err != nil {
			return fmt.Errorf("check %q: %w", t.exchange, err)
		}
		return nil
	}
	if err := ch.ExchangeDeclare(t.exchange, amqp091.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare %q: %w", t.exchange, err)
	}
	return nil
}

// waitSession returns a live session, waiting for one within ctx.
func (t *Transport) waitSession(ctx context.Context, op string) (*session, error) {
	for {
		t.mu.Lock()
		s, up, closed := t.sess, t.up, t.closed
		t.mu.Unlock()
		if closed {
			return nil, fmt.Errorf("amqp: %s: %w", op, transport.ErrClosed)
		}
		var wait <-chan struct{} = up
		if s != nil {
			if !s.isDead() {
				return s, nil
			}
			wait = s.dead // lost, and the manager has not noticed yet
		}
		select {
		case <-wait:
		case <-t.closing:
		case <-ctx.Done():
			t.mu.Lock()
			lastErr := t.lastErr
			t.mu.Unlock()
			if lastErr == nil {
				lastErr = errors.New("no connection yet")
			}
			return nil, fmt.Errorf("amqp: %s: %w (%v): %w", op, transport.ErrNotConnected, lastErr, ctx.Err())
		}
	}
}

// ---- publishing ----

// errLost: the connection went away before every confirm came.
var errLost = errors.New("amqp: connection lost before the broker confirmed")

// Publish sends msgs in order and returns once the broker confirmed them
// all (see the package comment).
func (t *Transport) Publish(ctx context.Context, msgs ...*transport.Message) error {
	pubs, err := t.begin(ctx, msgs)
	if err != nil {
		return err
	}
	defer t.inflight.Done()
	return t.ops.Timed(time.Now(), len(msgs), t.publishAll(ctx, msgs, pubs))
}

// begin checks msgs and maps them to their AMQP form, and counts the call
// as in flight (the caller calls t.inflight.Done) unless it fails.
func (t *Transport) begin(ctx context.Context, msgs []*transport.Message) ([]amqp091.Publishing, error) {
	for i, m := range msgs {
		if err := checkMessage(m); err != nil {
			return nil, fmt.Errorf("amqp: publish: message %d: %w", i, err)
		}
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, fmt.Errorf("amqp: publish: %w", transport.ErrClosed)
	}
	// Counted under the lock Close takes, so Close's wait sees every call.
	t.inflight.Add(1)
	t.mu.Unlock()
	if err := ctx.Err(); err != nil {
		t.inflight.Done()
		return nil, fmt.Errorf("amqp: publish: %w", err)
	}
	pubs, err := t.publishings(msgs)
	if err != nil {
		t.inflight.Done()
		return nil, err
	}
	return pubs, nil
}

// publishAll sends msgs on whichever connection is live until the broker
// confirmed them all, sending the unconfirmed ones again after a loss.
func (t *Transport) publishAll(ctx context.Context, msgs []*transport.Message, pubs []amqp091.Publishing) error {
	pending := msgs
	for len(pending) > 0 {
		s, err := t.waitSession(ctx, "publish")
		if err != nil {
			return err
		}
		n, err := t.publishOn(ctx, s, pending, pubs)
		pending, pubs = pending[n:], pubs[n:]
		if err == nil {
			return nil
		}
		if !errors.Is(err, errLost) {
			return err
		}
		if t.isClosing() {
			return fmt.Errorf("amqp: publish: %d message(s) not confirmed: %w", len(pending), transport.ErrClosed)
		}
		t.log.Debug("amqp: connection lost while publishing; sending again", "unconfirmed", len(pending))
	}
	return nil
}

var _ transport.Sender = (*Transport)(nil)

// sentBatch is one Send's messages on the session they went out on.
type sentBatch struct {
	*transport.Pending
	sess *session
	// prev is the batch sent before this one, until this one resolves:
	// after a loss this one is sent again only once prev has been.
	prev *sentBatch
}

// Send implements transport.Sender: Publish's send, with the wait for
// the confirms in a goroutine of its own that resolves the Pending.
func (t *Transport) Send(ctx context.Context, msgs ...*transport.Message) (*transport.Pending, error) {
	pubs, err := t.begin(ctx, msgs)
	if err != nil {
		return nil, err
	}
	t.sendMu.Lock()
	defer t.sendMu.Unlock()
	s, err := t.sessionInOrder(ctx)
	if err != nil {
		t.inflight.Done()
		return nil, err
	}
	start := time.Now()
	confirms, sendErr := t.sendOn(s, msgs, pubs)
	b := &sentBatch{Pending: transport.NewPending(), sess: s, prev: t.lastSent}
	t.lastSent = b
	go func() {
		defer t.inflight.Done()
		b.Resolve(t.ops.Timed(start, len(msgs), t.settleSent(ctx, b, msgs, pubs, confirms, sendErr)))
		b.prev = nil // let the chain of resolved batches go
	}()
	return b.Pending, nil
}

// sessionInOrder returns the live session once no batch sent on an
// earlier session is still unresolved: those are sent again first, so
// that a loss does not let later messages overtake them.
func (t *Transport) sessionInOrder(ctx context.Context) (*session, error) {
	for {
		s, err := t.waitSession(ctx, "publish")
		if err != nil {
			return nil, err
		}
		last := t.lastSent
		if last == nil || last.sess == s {
			return s, nil
		}
		select {
		case <-last.Done():
			return s, nil
		case <-t.closing:
			return nil, fmt.Errorf("amqp: publish: %w", transport.ErrClosed)
		case <-ctx.Done():
			return nil, fmt.Errorf("amqp: publish: waiting for earlier messages to be sent again: %w", ctx.Err())
		}
	}
}

// settleSent awaits the confirms of a Send's batch and, after a loss,
// sends the unconfirmed rest again once the batch before it was.
func (t *Transport) settleSent(ctx context.Context, b *sentBatch, msgs []*transport.Message, pubs []amqp091.Publishing, confirms []*amqp091.DeferredConfirmation, sendErr error) error {
	n, err := t.awaitConfirms(ctx, b.sess, msgs, confirms, sendErr)
	if err == nil || !errors.Is(err, errLost) {
		return err
	}
	if b.prev != nil {
		select {
		case <-b.prev.Done():
		case <-ctx.Done():
			return fmt.Errorf("amqp: publish: %d message(s) not confirmed: %w", len(msgs)-n, ctx.Err())
		}
	}
	if t.isClosing() {
		return fmt.Errorf("amqp: publish: %d message(s) not confirmed: %w", len(msgs)-n, transport.ErrClosed)
	}
	t.log.Debug("amqp: connection lost while publishing; sending again", "unconfirmed", len(msgs)-n)
	return t.publishAll(ctx, msgs[n:], pubs[n:])
}

func (t *Transport) isClosing() bool {
	select {
	case <-t.closing:
		return true
	default:
		return false
	}
}

// checkMessage refuses what AMQP cannot carry: routing keys, message ids
// and header names are short strings of at most 255 bytes.
func checkMessage(m *transport.Message) error {
	switch {
	case m == nil:
		return fmt.Errorf("%w: nil message", transport.ErrBadMessage)
	case len(m.Topic) > 255:
		return fmt.Errorf("%w: topic of %d bytes (AMQP routing keys are at most 255)", transport.ErrBadMessage, len(m.Topic))
	case len(m.ID) > 255:
		return fmt.Errorf("%w: msg_id of %d bytes (AMQP message_id is at most 255)", transport.ErrBadMessage, len(m.ID))
	}
	for k := range m.Headers {
		if len(k) > 255 {
			return fmt.Errorf("%w: header name of %d bytes (AMQP field names are at most 255)", transport.ErrBadMessage, len(k))
		}
	}
	return nil
}

// publishOn sends msgs on s and then awaits their confirms; n counts the
// leading messages confirmed. errLost means the rest may be sent again.
func (t *Transport) publishOn(ctx context.Context, s *session, msgs []*transport.Message, pubs []amqp091.Publishing) (n int, err error) {
	confirms, sendErr := t.sendOn(s, msgs, pubs)
	return t.awaitConfirms(ctx, s, msgs, confirms, sendErr)
}

// sendOn sends msgs on s, stopping at the first that cannot be sent, and
// returns the confirmations to await.
func (t *Transport) sendOn(s *session, msgs []*transport.Message, pubs []amqp091.Publishing) ([]*amqp091.DeferredConfirmation, error) {
	confirms := make([]*amqp091.DeferredConfirmation, 0, len(msgs))
	// The batch goes to the kernel in one write (see coalescingConn). A
	// failed write closes the connection, so its confirms fail as a
	// loss, and the messages are sent again.
	s.wire.hold()
	defer s.wire.release()
	for i, m := range msgs {
		dc, err := s.pub.PublishWithDeferredConfirm(t.exchange, m.Topic, false, false, pubs[i])
		if err != nil {
			return confirms, err
		}
		confirms = append(confirms, dc)
	}
	return confirms, nil
}

// awaitConfirms waits for the confirms of the messages sendOn sent on s;
// n counts the leading messages confirmed. errLost means the rest may be
// sent again.
func (t *Transport) awaitConfirms(ctx context.Context, s *session, msgs []*transport.Message, confirms []*amqp091.DeferredConfirmation, sendErr error) (n int, err error) {
	for i, dc := range confirms {
		select {
		case <-dc.Done():
		case <-ctx.Done():
			return i, fmt.Errorf("amqp: publish: %d of %d message(s) not confirmed: %w", len(msgs)-i, len(msgs), ctx.Err())
		}
		if !dc.Acked() {
			// amqp091-go marks the channel closed before it fails the
			// pending confirms, so a closed channel here means a loss.
			if s.pub.IsClosed() {
				return i, errLost
			}
			return i, fmt.Errorf("%w: topic %q", ErrNacked, msgs[i].Topic)
		}
	}
	if sendErr != nil {
		if s.isDead() || errors.Is(sendErr, amqp091.ErrClosed) {
			return len(confirms), errLost
		}
		return len(confirms), fmt.Errorf("amqp: publish %q: %w", msgs[len(confirms)].Topic, sendErr)
	}
	return len(msgs), nil
}

// publishings maps msgs to their AMQP form in the transport's format,
// once: a message sent again after a connection loss is the same.
func (t *Transport) publishings(msgs []*transport.Message) ([]amqp091.Publishing, error) {
	pubs := make([]amqp091.Publishing, len(msgs))
	now := time.Now()
	for i, m := range msgs {
		if t.opts.Format != FormatFedoraMessaging {
			pubs[i] = publishing(m)
			continue
		}
		p, err := fedoraPublishing(m, now)
		if err != nil {
			return nil, fmt.Errorf("amqp: publish: message %d: %w", i, err)
		}
		pubs[i] = p
	}
	return pubs, nil
}

// publishing maps a message to its AMQP form in the fedmsg format.
func publishing(m *transport.Message) amqp091.Publishing {
	p := amqp091.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp091.Persistent,
		MessageId:    m.ID,
		Body:         m.Body,
	}
	if len(m.Headers) > 0 {
		p.Headers = make(amqp091.Table, len(m.Headers))
		for k, v := range m.Headers {
			p.Headers[k] = v
		}
	}
	return p
}

// ---- closing ----

// Close refuses new work, waits (within ctx, at most drainLimit) for
// in-flight publishes to be confirmed, closes the connection and waits
// for every goroutine of the transport. After a Close whose ctx ended,
// the shutdown goes on and a later Close waits for it. Idempotent.
func (t *Transport) Close(ctx context.Context) error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		close(t.closing)
		t.mu.Unlock()
		go t.teardown()
	})
	select {
	case <-t.done:
		return nil
	default:
	}
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		t.hurryOnce.Do(func() { close(t.hurry) })
		return fmt.Errorf("amqp: close: %w", ctx.Err())
	}
}

func (t *Transport) teardown() {
	drained := make(chan struct{})
	go func() {
		t.inflight.Wait()
		close(drained)
	}()
	timer := time.NewTimer(drainLimit)
	select {
	case <-drained:
	case <-t.hurry:
	case <-timer.C:
	}
	timer.Stop()
	// Subscriptions end on closing; the manager and the consumers on life.
	t.stopLife()
	t.wg.Wait()
	<-drained // publishes end once the connection is gone
	close(t.done)
}
