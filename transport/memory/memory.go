// Package memory is the in-process reference transport: every capability of
// the transport contract, no network. Tests and examples use it, and it is
// what the conformance suite (transporttest) is first checked against.
//
// Behaviour, precisely:
//
//   - Subscribe makes a subscription with its own queue of at most
//     Options.Buffer messages waiting to be received (plus the one being
//     handed to the channel). Patterns are message.Pattern (prefix or
//     fnmatch glob), the same as on every transport.
//   - Publish returns once every matching subscription has each message
//     queued (Confirms). When a queue is full Publish waits for room until
//     ctx ends (WhenFull Block, a broker's flow control), or fails at once
//     with ErrFull (WhenFull Reject). When Publish fails, the messages
//     before the failing one stay queued. Messages are copied, one copy per
//     subscription: the caller may reuse its Body and Headers as soon as
//     Publish returns, and consumers do not share memory.
//   - One publisher's messages reach each subscription in the order they
//     were published (Ordered).
//   - Nack puts the message back at the head of the queue of the
//     subscription it came from, so it comes next, after at most the one
//     message already being handed to the channel (Redelivery), unless
//     errors.Is(cause, transport.ErrPermanent); then it is dropped.
//     A redelivered message carries the header "redelivered: true".
//     Redeliveries do not count against Buffer, so Nack never blocks.
//   - Nothing outlives the process (not Durable). When a subscription ends
//     (its ctx ends or the transport is closed) its channel is closed and its
//     queued messages are discarded, like an exclusive auto-delete queue;
//     settling one of its deliveries afterwards returns an error wrapping
//     transport.ErrClosed.
package memory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/transport"
)

// ErrFull: with WhenFull Reject, a subscription's queue had no room.
var ErrFull = errors.New("memory: subscription queue full")

// FullPolicy says what Publish does when a subscription's queue is full.
type FullPolicy int

const (
	// Block waits for room until the publishing ctx ends.
	Block FullPolicy = iota
	// Reject fails the publish with ErrFull.
	Reject
)

// DefaultBuffer is the queue size of a subscription when Options.Buffer is 0.
const DefaultBuffer = 256

// Options configure a memory transport. The zero value is usable.
type Options struct {
	// Buffer is how many messages a subscription holds before publishers
	// wait (or fail, with Reject). 0 means DefaultBuffer.
	Buffer int
	// WhenFull is what Publish does when a matching subscription is full.
	WhenFull FullPolicy
}

// Validate reports options that cannot work.
func (o Options) Validate() error {
	var errs []error
	if o.Buffer < 0 {
		errs = append(errs, fmt.Errorf("memory: buffer must be >= 0, got %d", o.Buffer))
	}
	if o.WhenFull != Block && o.WhenFull != Reject {
		errs = append(errs, fmt.Errorf("memory: unknown WhenFull policy %d", o.WhenFull))
	}
	return errors.Join(errs...)
}

// Transport is the in-memory transport. It is safe for concurrent use.
type Transport struct {
	opts Options

	mu     sync.Mutex
	subs   map[*subscription]struct{}
	nextID int

	closeOnce sync.Once
	closed    chan struct{} // closed when Close starts
	pumps     sync.WaitGroup
}

var _ transport.Transport = (*Transport)(nil)

// New returns an empty transport.
func New(o Options) (*Transport, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Buffer == 0 {
		o.Buffer = DefaultBuffer
	}
	return &Transport{opts: o, subs: map[*subscription]struct{}{}, closed: make(chan struct{})}, nil
}

// Capabilities: everything but durability.
func (t *Transport) Capabilities() transport.Capabilities {
	return transport.Capabilities{Confirms: true, Redelivery: true, Ordered: true}
}

func (t *Transport) isClosed() bool {
	select {
	case <-t.closed:
		return true
	default:
		return false
	}
}

// Publish queues each message, in order, on every subscription whose
// patterns match its topic.
func (t *Transport) Publish(ctx context.Context, msgs ...*transport.Message) error {
	if t.isClosed() {
		return transport.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: publish: %w", err)
	}
	for _, m := range msgs {
		if m == nil {
			return fmt.Errorf("%w: nil message", transport.ErrBadMessage)
		}
		for _, s := range t.matching(m.Topic) {
			if err := s.enqueue(ctx, copyMessage(m)); err != nil {
				return fmt.Errorf("memory: publish %q to subscription %d: %w", m.Topic, s.id, err)
			}
		}
	}
	return nil
}

// matching returns the live subscriptions that select topic, oldest first.
func (t *Transport) matching(topic string) []*subscription {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*subscription
	for s := range t.subs {
		if message.MatchAny(s.patterns, topic) {
			out = append(out, s)
		}
	}
	return out
}

func copyMessage(m *transport.Message) *transport.Message {
	c := *m
	c.Body = bytes.Clone(m.Body)
	c.Headers = maps.Clone(m.Headers)
	return &c
}

// Subscribe starts a subscription to patterns (none: every topic). The
// channel is closed when ctx ends or the transport is closed.
func (t *Transport) Subscribe(ctx context.Context, patterns ...string) (<-chan *transport.Delivery, error) {
	if t.isClosed() {
		return nil, transport.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: subscribe: %w", err)
	}
	compiled := make([]message.Pattern, 0, len(patterns))
	for _, p := range patterns {
		c, err := message.CompilePattern(p)
		if err != nil {
			return nil, fmt.Errorf("memory: subscribe: %w", err)
		}
		compiled = append(compiled, c)
	}
	t.mu.Lock()
	// Checked again under the lock Close takes, so no subscription starts
	// after Close has stopped the others.
	if t.isClosed() {
		t.mu.Unlock()
		return nil, transport.ErrClosed
	}
	t.nextID++
	s := &subscription{
		t:        t,
		id:       t.nextID,
		patterns: compiled,
		source:   fmt.Sprintf("memory:%d", t.nextID),
		out:      make(chan *transport.Delivery),
		wake:     make(chan struct{}, 1),
		ended:    make(chan struct{}),
	}
	t.subs[s] = struct{}{}
	t.pumps.Add(1)
	t.mu.Unlock()
	go s.pump(ctx)
	return s.out, nil
}

// Close ends every subscription and refuses further use. It waits, within
// ctx, for the subscriptions' goroutines to finish; publishers waiting for
// room return ErrClosed. Calling it again waits the same way.
func (t *Transport) Close(ctx context.Context) error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		close(t.closed)
		t.mu.Unlock()
	})
	done := make(chan struct{})
	go func() {
		t.pumps.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("memory: close: %w", ctx.Err())
	}
}

// subscription is one Subscribe call: a queue and the goroutine (pump)
// that hands its head to the consumer.
type subscription struct {
	t        *Transport
	id       int
	patterns []message.Pattern
	source   string
	out      chan *transport.Delivery
	wake     chan struct{} // capacity 1: the queue grew
	ended    chan struct{} // closed when the pump stops

	mu    sync.Mutex
	queue []*transport.Message
	room  chan struct{} // closed and cleared when the queue shrinks; nil when nobody waits
	done  bool
}

// enqueue appends m, waiting for room as the policy says. A subscription
// that has ended takes nothing and is not an error: it no longer matches.
func (s *subscription) enqueue(ctx context.Context, m *transport.Message) error {
	for {
		s.mu.Lock()
		if s.done {
			s.mu.Unlock()
			return nil
		}
		if len(s.queue) < s.t.opts.Buffer {
			s.queue = append(s.queue, m)
			s.mu.Unlock()
			s.signal()
			return nil
		}
		if s.t.opts.WhenFull == Reject {
			s.mu.Unlock()
			return ErrFull
		}
		if s.room == nil {
			s.room = make(chan struct{})
		}
		room := s.room
		s.mu.Unlock()
		select {
		case <-room:
		case <-s.ended:
			return nil
		case <-s.t.closed:
			return transport.ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// requeue puts m back at the head of the queue, beyond Buffer if need be.
func (s *subscription) requeue(m *transport.Message) error {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return fmt.Errorf("memory: nack: subscription %d ended, message dropped: %w", s.id, transport.ErrClosed)
	}
	s.queue = append(s.queue, nil)
	copy(s.queue[1:], s.queue)
	s.queue[0] = m
	s.mu.Unlock()
	s.signal()
	return nil
}

func (s *subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pop takes the head of the queue and wakes publishers waiting for room.
func (s *subscription) pop() (*transport.Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return nil, false
	}
	m := s.queue[0]
	s.queue[0] = nil
	s.queue = s.queue[1:]
	if len(s.queue) == 0 {
		s.queue = nil // let the backing array go
	}
	if s.room != nil {
		close(s.room)
		s.room = nil
	}
	return m, true
}

func (s *subscription) pump(ctx context.Context) {
	defer s.t.pumps.Done()
	defer s.stop()
	for {
		m, ok := s.pop()
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-ctx.Done():
				return
			case <-s.t.closed:
				return
			}
		}
		d := transport.NewDelivery(m, s.source, &settler{s: s, m: m})
		select {
		case s.out <- d:
		case <-ctx.Done():
			return
		case <-s.t.closed:
			return
		}
	}
}

// stop ends the subscription: no more matches, queue discarded, waiting
// publishers released, channel closed.
func (s *subscription) stop() {
	s.t.mu.Lock()
	delete(s.t.subs, s)
	s.t.mu.Unlock()
	s.mu.Lock()
	s.done = true
	s.queue = nil
	s.mu.Unlock()
	close(s.ended)
	close(s.out)
}

// settler settles one delivery of m from s.
type settler struct {
	s *subscription
	m *transport.Message
}

func (st *settler) Ack(ctx context.Context) error {
	st.s.mu.Lock()
	done := st.s.done
	st.s.mu.Unlock()
	if done {
		return fmt.Errorf("memory: ack: subscription %d ended: %w", st.s.id, transport.ErrClosed)
	}
	return nil
}

func (st *settler) Nack(ctx context.Context, cause error) error {
	if errors.Is(cause, transport.ErrPermanent) {
		return nil
	}
	m := *st.m
	m.Headers = maps.Clone(st.m.Headers)
	if m.Headers == nil {
		m.Headers = map[string]string{}
	}
	m.Headers["redelivered"] = "true"
	return st.s.requeue(&m)
}
