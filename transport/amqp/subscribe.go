package amqp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/gofedmsg/fedmsg/internal/retry"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/transport"
)

// Subscribe delivers the messages whose topic matches one of patterns
// (message.Pattern; none or "" matches all). It returns once the queue is
// bound, or at once when no broker is reachable (see the package
// comment). The channel closes when ctx ends or the transport closes, not
// when a connection is lost.
func (t *Transport) Subscribe(ctx context.Context, patterns ...string) (<-chan *transport.Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("amqp: subscribe: %w", err)
	}
	compiled := make([]message.Pattern, 0, len(patterns))
	for _, p := range patterns {
		c, err := message.CompilePattern(p)
		if err != nil {
			return nil, fmt.Errorf("amqp: subscribe: %w", err)
		}
		compiled = append(compiled, c)
	}
	keys := bindingKeys(patterns)
	sctx, cancel := context.WithCancel(ctx)
	s := &subscription{
		t:        t,
		ctx:      sctx,
		cancel:   cancel,
		patterns: compiled,
		inbox:    make(chan handoff),
		out:      make(chan *transport.Delivery),
		done:     make(chan struct{}),
		ready:    make(chan error, 1),
	}

	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		cancel()
		return nil, fmt.Errorf("amqp: subscribe: %w", transport.ErrClosed)
	}
	c := t.shared
	fresh := c == nil || c.isStopped()
	if fresh {
		c = &consumer{t: t, named: t.opts.Queue, stop: make(chan struct{}), wanted: map[string]bool{}}
		if c.named != "" {
			t.shared = c
		}
	}
	s.c = c
	s.keys = keys
	c.mu.Lock()
	c.subs = append(c.subs, s)
	for _, k := range keys {
		if !c.wanted[k] {
			c.wanted[k] = true
			c.keys = append(c.keys, k)
		}
	}
	c.reportReady() // a named queue already bound with these keys
	c.mu.Unlock()
	// Goroutines are counted under the lock Close takes, before its Wait.
	t.wg.Add(2)
	if fresh {
		go c.run()
	} else {
		go c.bindLive(s)
	}
	down := t.down
	t.mu.Unlock()
	go s.run()

	select {
	case err := <-s.ready:
		if err != nil {
			cancel()
			return nil, fmt.Errorf("amqp: subscribe: %w", err)
		}
	case <-down:
		t.log.Warn("amqp: no broker reachable; the subscription will be bound once connected", "patterns", patterns)
	case <-ctx.Done():
		cancel()
		return nil, fmt.Errorf("amqp: subscribe: %w", ctx.Err())
	case <-t.closing:
		cancel()
		return nil, fmt.Errorf("amqp: subscribe: %w", transport.ErrClosed)
	}
	return s.out, nil
}

// bindingKeys returns AMQP topic binding keys that together select every
// topic the patterns match, and usually little more: each pattern's
// message.Pattern.WholeWords followed by "#", cut to AMQP's 255 bytes. A
// '#' or '*' word in a topic only widens the key, so the set stays a
// superset. "" or no pattern binds "#".
func bindingKeys(patterns []string) []string {
	if len(patterns) == 0 {
		return []string{"#"}
	}
	set := map[string]bool{}
	for _, p := range patterns {
		c, err := message.CompilePattern(p)
		if err != nil {
			return []string{"#"} // Subscribe refuses it first; "#" is still a superset
		}
		words := c.WholeWords()
		// Binding keys are short strings: drop words until it fits.
		for len(words) > 0 && len(strings.Join(words, "."))+2 > 255 {
			words = words[:len(words)-1]
		}
		if len(words) == 0 {
			return []string{"#"}
		}
		set[strings.Join(words, ".")+".#"] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// consumer is one AMQP consumer: a queue, its bindings and the channel
// consuming it, set up again after every loss. It hands each message to
// the subscriptions it matches: one subscription for a private queue,
// every subscription of the transport for a named queue.
type consumer struct {
	t     *Transport
	named string        // Options.Queue; "" = exclusive server-named queue
	stop  chan struct{} // closed when its last subscription has left

	mu      sync.Mutex
	stopped bool
	subs    []*subscription
	wanted  map[string]bool     // binding keys of every subscription so far
	keys    []string            // the same, in order
	ch      *amqp091.Channel    // the live consuming channel; nil between connections
	conn    *amqp091.Connection // the connection of ch
	gen     int                 // counts setups, so late binds know they are stale
	queue   string              // the live queue's name
	source  string              // for Delivery.Source
	bound   map[string]bool     // keys bound on the live channel
}

func (c *consumer) isStopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped
}

// detach removes s; the last subscription to leave stops the consumer.
func (c *consumer) detach(s *subscription) {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.subs = slices.DeleteFunc(c.subs, func(x *subscription) bool { return x == s })
	if len(c.subs) == 0 && !c.stopped {
		c.stopped = true
		close(c.stop)
		if c.t.shared == c {
			c.t.shared = nil
		}
	}
}

// bindLive binds the keys of a subscription that joined a running
// consumer (a named queue), on a channel of its own so that neither the
// consumer nor Subscribe waits on the network under a lock. When the
// consumer has no live channel, its next setup binds the keys and reports.
func (c *consumer) bindLive(s *subscription) {
	defer c.t.wg.Done()
	c.mu.Lock()
	ch, conn, queue, gen := c.ch, c.conn, c.queue, c.gen
	var missing []string
	for _, k := range s.keys {
		if !c.bound[k] {
			missing = append(missing, k)
		}
	}
	c.mu.Unlock()
	if ch == nil || len(missing) == 0 {
		return
	}
	err := func() error {
		bch, err := conn.Channel()
		if err != nil {
			return err
		}
		defer bch.Close()
		for _, k := range missing {
			if err := bch.QueueBind(queue, k, c.t.exchange, false, nil); err != nil {
				return fmt.Errorf("bind %q to %q with %q: %w", queue, c.t.exchange, k, err)
			}
		}
		return nil
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || c.ch != ch {
		return // lost or set up again meanwhile: the next setup binds every key
	}
	if err != nil {
		c.t.log.Warn("amqp: bind failed", "queue", queue, "err", err)
		if !s.reported {
			s.reported = true
			s.ready <- err
		}
		return
	}
	for _, k := range missing {
		c.bound[k] = true
	}
	c.reportReady()
}

// reportReady tells the subscriptions waiting in Subscribe whose keys are
// all bound that they are.
func (c *consumer) reportReady() {
	for _, s := range c.subs {
		if s.reported || c.ch == nil {
			continue
		}
		if !slices.ContainsFunc(s.keys, func(k string) bool { return !c.bound[k] }) {
			s.reported = true
			s.ready <- nil
		}
	}
}

// reportErr tells every subscription still waiting in Subscribe that the
// setup failed.
func (c *consumer) reportErr(err error) {
	for _, s := range c.subs {
		if !s.reported {
			s.reported = true
			s.ready <- err
		}
	}
}

func (c *consumer) run() {
	t := c.t
	defer t.wg.Done()
	failures := 0
	for {
		s, ok := c.waitSession()
		if !ok {
			return
		}
		deliveries, err := c.setup(s)
		if err != nil {
			if s.isDead() {
				continue // the connection went: the manager makes another
			}
			// Refused on a live connection (a missing exchange, a queue
			// declared otherwise, permissions): tell Subscribe, retry.
			t.log.Warn("amqp: subscription setup failed", "queue", c.named, "err", err)
			c.mu.Lock()
			c.reportErr(err)
			c.mu.Unlock()
			if !c.pause(retry.Jitter(retry.Exponential(failures, t.opts.ReconnectDelay, t.opts.MaxReconnectDelay))) {
				return
			}
			failures++
			continue
		}
		failures = 0
		if !c.consume(deliveries) {
			return
		}
		c.mu.Lock()
		c.ch, c.bound = nil, nil
		c.mu.Unlock()
		if !s.isDead() {
			// Only the channel died (the queue was deleted, a consumer
			// cancel): pause before declaring it all again.
			t.log.Warn("amqp: consuming channel lost", "queue", c.queue)
			if !c.pause(retry.Jitter(t.opts.ReconnectDelay)) {
				return
			}
		}
	}
}

// waitSession waits for a live connection; false when the consumer stops.
func (c *consumer) waitSession() (*session, bool) {
	for {
		c.t.mu.Lock()
		s, up := c.t.sess, c.t.up
		c.t.mu.Unlock()
		var wait <-chan struct{} = up
		if s != nil {
			if !s.isDead() {
				return s, true
			}
			wait = s.dead
		}
		select {
		case <-wait:
		case <-c.stop:
			return nil, false
		case <-c.t.life.Done():
			return nil, false
		}
	}
}

// pause waits d unless the consumer stops first (false).
func (c *consumer) pause(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-c.stop:
		return false
	case <-c.t.life.Done():
		return false
	}
}

// setup declares the topology on a new channel of s and starts
// consuming. No lock is held while it waits on the broker.
func (c *consumer) setup(s *session) (<-chan amqp091.Delivery, error) {
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	fail := func(step string, err error) (<-chan amqp091.Delivery, error) {
		_ = ch.Close()
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	if p := c.t.opts.Prefetch; p > 0 {
		if err := ch.Qos(p, 0, false); err != nil {
			return fail("qos", err)
		}
	}
	if err := c.t.declareExchange(ch); err != nil {
		return fail("exchange", err)
	}
	var q amqp091.Queue
	if c.named != "" {
		q, err = ch.QueueDeclare(c.named, true, false, false, false, nil)
	} else {
		q, err = ch.QueueDeclare("", false, true, true, false, nil)
	}
	if err != nil {
		return fail(fmt.Sprintf("declare queue %q", c.named), err)
	}
	deliveries, err := ch.Consume(q.Name, "", false, false, false, false, nil)
	if err != nil {
		return fail(fmt.Sprintf("consume %q", q.Name), err)
	}
	// Bind every key, including those of subscriptions that join while
	// this runs: the channel is published (for bindLive) in the same
	// critical section that finds nothing left to bind, so a subscription
	// either sees it live or has its keys bound here. Deliveries may start
	// before the last bind: the patterns filter them anyway.
	bound := map[string]bool{}
	for {
		c.mu.Lock()
		var missing []string
		for _, k := range c.keys {
			if !bound[k] {
				missing = append(missing, k)
			}
		}
		if len(missing) == 0 {
			c.ch, c.conn, c.queue, c.bound = ch, s.conn, q.Name, bound
			c.gen++
			c.source = s.url + " queue " + q.Name
			c.reportReady()
			c.mu.Unlock()
			return deliveries, nil
		}
		c.mu.Unlock()
		for _, k := range missing {
			if err := ch.QueueBind(q.Name, k, c.t.exchange, false, nil); err != nil {
				return fail(fmt.Sprintf("bind %q to %q with %q", q.Name, c.t.exchange, k), err)
			}
			bound[k] = true
		}
	}
}

// consume hands deliveries out until the channel dies (true: set up
// again) or the consumer stops (false).
func (c *consumer) consume(deliveries <-chan amqp091.Delivery) bool {
	c.mu.Lock()
	ch, source := c.ch, c.source
	c.mu.Unlock()
	for {
		select {
		case d, ok := <-deliveries:
			if !ok {
				return true
			}
			if !c.dispatch(ch, source, &d) {
				c.closeChannel(ch)
				return false
			}
		case <-c.stop:
			c.closeChannel(ch)
			return false
		case <-c.t.life.Done():
			return false
		}
	}
}

// closeChannel closes ch, which makes the broker requeue what it had
// delivered and nobody settled, and deletes a private queue.
func (c *consumer) closeChannel(ch *amqp091.Channel) {
	_ = ch.Close()
	c.mu.Lock()
	c.ch, c.bound = nil, nil
	c.mu.Unlock()
}

// dispatch hands d to every subscription whose patterns match; false when
// the consumer is stopping.
func (c *consumer) dispatch(ch *amqp091.Channel, source string, d *amqp091.Delivery) bool {
	m, err := c.t.toMessage(d)
	if err != nil {
		// It would fail the same way on every redelivery: rejected, not
		// requeued (dead-lettered where the queue has a dead-letter exchange).
		c.t.log.Warn("amqp: message rejected", "topic", d.RoutingKey, "message_id", d.MessageId, "err", err)
		_ = ch.Nack(d.DeliveryTag, false, false)
		return true
	}
	c.mu.Lock()
	var targets []*subscription
	for _, s := range c.subs {
		if message.MatchAny(s.patterns, m.Topic) {
			targets = append(targets, s)
		}
	}
	stopped := c.stopped
	c.mu.Unlock()
	if stopped {
		return false // nobody left to take it: the channel's close requeues it
	}
	if len(targets) == 0 {
		// Bound by a superset key (or by an earlier subscription of a
		// named queue): not for anyone here.
		_ = ch.Ack(d.DeliveryTag, false)
		return true
	}
	p := &pending{ch: ch, tag: d.DeliveryTag, left: len(targets)}
	for i, s := range targets {
		mi := m
		if i > 0 { // subscriptions do not share memory
			mi = &transport.Message{Topic: m.Topic, Body: bytes.Clone(m.Body), ID: m.ID, Headers: maps.Clone(m.Headers)}
		}
		h := handoff{d: transport.NewDelivery(mi, source, settler{p}), p: p}
		select {
		case s.inbox <- h:
		case <-s.done:
			_ = p.settle(outcomeNone)
		case <-c.stop:
			return false
		case <-c.t.life.Done():
			return false
		}
	}
	return true
}

// handoff is a delivery on its way to a subscription's goroutine.
type handoff struct {
	d *transport.Delivery
	p *pending
}

// subscription is one Subscribe call. Its goroutine alone sends on and
// closes out; the consumer hands it deliveries through inbox, unbuffered,
// so that none is stranded in a buffer when the subscription ends.
type subscription struct {
	t        *Transport
	c        *consumer
	ctx      context.Context
	cancel   context.CancelFunc
	patterns []message.Pattern
	inbox    chan handoff
	out      chan *transport.Delivery
	done     chan struct{} // closed when the subscription stops taking deliveries
	keys     []string      // its binding keys
	ready    chan error    // the first setup's outcome, for Subscribe
	reported bool          // under c.mu
}

func (s *subscription) run() {
	defer s.t.wg.Done()
	defer close(s.out)
	defer s.c.detach(s)
	defer close(s.done)
	defer s.cancel()
	for {
		select {
		case h := <-s.inbox:
			select {
			case s.out <- h.d:
			case <-s.ctx.Done():
				_ = h.p.settle(outcomeNone)
				return
			case <-s.t.closing:
				_ = h.p.settle(outcomeNone)
				return
			}
		case <-s.ctx.Done():
			return
		case <-s.t.closing:
			return
		}
	}
}

// outcome is one subscription's settlement of a shared delivery.
type outcome int

const (
	outcomeNone    outcome = iota // never reached the application
	outcomeAck                    // Ack
	outcomeRequeue                // Nack
	outcomeDrop                   // Nack(ErrPermanent)
)

// pending is one broker delivery handed to one or more subscriptions. The
// broker hears of it once all of them have settled: requeued if any asked
// for it (or if none received it), dropped if any refused it for good,
// else acked.
type pending struct {
	ch  *amqp091.Channel
	tag uint64

	mu                     sync.Mutex
	left                   int
	taken, requeue, refuse bool
}

func (p *pending) settle(o outcome) error {
	p.mu.Lock()
	switch o {
	case outcomeAck:
		p.taken = true
	case outcomeRequeue:
		p.taken, p.requeue = true, true
	case outcomeDrop:
		p.taken, p.refuse = true, true
	}
	p.left--
	last := p.left == 0
	p.mu.Unlock()
	if !last {
		return nil
	}
	var err error
	switch {
	case p.requeue || !p.taken:
		err = p.ch.Nack(p.tag, false, true)
	case p.refuse:
		err = p.ch.Nack(p.tag, false, false)
	default:
		err = p.ch.Ack(p.tag, false)
	}
	if err != nil {
		if errors.Is(err, amqp091.ErrClosed) {
			return fmt.Errorf("%w: %w", ErrStaleDelivery, transport.ErrClosed)
		}
		return fmt.Errorf("amqp: settle: %w", err)
	}
	return nil
}

// settler adapts pending to transport.Settler.
type settler struct{ p *pending }

func (s settler) Ack(context.Context) error { return s.p.settle(outcomeAck) }

func (s settler) Nack(_ context.Context, cause error) error {
	if errors.Is(cause, transport.ErrPermanent) {
		return s.p.settle(outcomeDrop)
	}
	return s.p.settle(outcomeRequeue)
}

// toMessage maps a delivery to a message in the transport's format.
func (t *Transport) toMessage(d *amqp091.Delivery) (*transport.Message, error) {
	if t.opts.Format == FormatFedoraMessaging {
		return fromFedoraMessaging(d, t.nextI, time.Now())
	}
	return toMessage(d), nil
}

// nextI counts the envelopes built from plain fedora-messaging messages.
func (t *Transport) nextI() int64 { return t.fmCounter.Add(1) }

// toMessage maps a delivery to a message: the routing key is the topic,
// the body is kept as received, message_id is the msg_id, and the string
// fields of the header table are the headers (others are not transport
// metadata gofedmsg sets, and are left out).
func toMessage(d *amqp091.Delivery) *transport.Message {
	m := &transport.Message{Topic: d.RoutingKey, Body: d.Body, ID: d.MessageId}
	m.Headers = headersFromTable(d.Headers)
	return m
}

func headersFromTable(t amqp091.Table) map[string]string {
	var h map[string]string
	for k, v := range t {
		if s, ok := v.(string); ok {
			if h == nil {
				h = make(map[string]string, len(t))
			}
			h[k] = s
		}
	}
	return h
}
