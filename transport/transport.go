// Package transport is the contract every message transport of gofedmsg
// honours: ZeroMQ, STOMP, AMQP and the in-memory reference. The bridge and the
// library talk to transports only through these types, so a route can join
// any two of them.
package transport

import (
	"context"
	"errors"
	"sync"
)

// Sentinel errors, checked with errors.Is. Transports wrap them with the
// endpoint or broker at fault.
var (
	// ErrClosed: the transport was closed; nothing more can be published.
	ErrClosed = errors.New("transport: closed")
	// ErrNotConnected: no broker or peer is reachable right now.
	ErrNotConnected = errors.New("transport: not connected")
	// ErrPermanent marks a Nack cause that must not be redelivered.
	ErrPermanent = errors.New("transport: permanent failure")
	// ErrBadMessage: a message was refused for its shape (frames, size, JSON).
	ErrBadMessage = errors.New("transport: bad message")
)

// Message is one fedmsg message as it travels.
type Message struct {
	// Topic is the fully-qualified fedmsg topic (ZeroMQ frame 0).
	Topic string
	// Body is the envelope JSON, forwarded verbatim: signatures live here,
	// so no transport re-serialises it.
	Body []byte
	// ID is the envelope's msg_id when known.
	ID string
	// Headers carries transport metadata; it is never part of what is signed.
	Headers map[string]string
}

// Capabilities says what a transport can honestly promise, so that callers
// (the bridge, the conformance suite) decide from declarations, not guesses.
type Capabilities struct {
	Confirms   bool // Publish returns nil only once the peer accepted the message
	Redelivery bool // Nack makes the source deliver the message again
	Durable    bool // messages survive a restart of the peer
	Ordered    bool // one publisher's messages arrive in the order sent
}

// Transport publishes and subscribes fedmsg messages.
type Transport interface {
	Capabilities() Capabilities
	// Publish sends msgs in order. nil means accepted (confirmed by the
	// broker where Capabilities().Confirms).
	Publish(ctx context.Context, msgs ...*Message) error
	// Subscribe delivers messages whose topic matches one of patterns
	// (message.Pattern: a plain prefix, or an fnmatch glob over the whole
	// topic; "" or none matches all). The channel is
	// closed when ctx ends or the transport is closed.
	Subscribe(ctx context.Context, patterns ...string) (<-chan *Delivery, error)
	// Close releases the transport, draining in-flight work within ctx.
	Close(ctx context.Context) error
}

// Settler settles a delivery with its source. Transports without
// redelivery pass nil, which makes Ack and Nack no-ops.
type Settler interface {
	Ack(ctx context.Context) error
	Nack(ctx context.Context, cause error) error
}

// Delivery is a received message and its settlement. Ack and Nack are
// idempotent: only the first settlement reaches the source.
type Delivery struct {
	Message *Message
	// Source names where the message came from (an endpoint URL, a queue).
	Source string

	settler Settler
	once    sync.Once
	err     error
}

// NewDelivery wraps msg with settler (nil for transports that cannot settle).
func NewDelivery(msg *Message, source string, settler Settler) *Delivery {
	return &Delivery{Message: msg, Source: source, settler: settler}
}

// Ack tells the source the message was handled.
func (d *Delivery) Ack(ctx context.Context) error {
	d.once.Do(func() {
		if d.settler != nil {
			d.err = d.settler.Ack(ctx)
		}
	})
	return d.err
}

// Nack tells the source the message was not handled; it is redelivered
// unless errors.Is(cause, ErrPermanent).
func (d *Delivery) Nack(ctx context.Context, cause error) error {
	d.once.Do(func() {
		if d.settler != nil {
			d.err = d.settler.Nack(ctx, cause)
		}
	})
	return d.err
}

// Sender is implemented by transports whose Publish is a send followed by
// a wait for the broker's confirmation (AMQP with publisher confirms).
// Publish costs the caller one round trip per call; with Send a caller
// keeps several batches in flight and settles each as its confirmation
// comes, which is how a bridge route keeps a broker busy.
type Sender interface {
	// Send hands msgs to the connection, in order and after the messages
	// of earlier Send calls, and returns once they are sent. The Pending
	// completes with what Publish would have returned for them: nil once
	// the broker confirmed every one. Confirmation is awaited within ctx,
	// which must outlive the Pending. After a connection loss the
	// unconfirmed messages are sent again, in the order of their Send
	// calls, before any later Send's messages.
	Send(ctx context.Context, msgs ...*Message) (*Pending, error)
}

// Pending is the outcome of a Send, once it is known.
type Pending struct {
	once sync.Once
	done chan struct{}
	err  error
}

// NewPending returns an unresolved Pending, for a Sender to Resolve.
func NewPending() *Pending { return &Pending{done: make(chan struct{})} }

// Resolve completes p with err. Only the first call counts.
func (p *Pending) Resolve(err error) {
	p.once.Do(func() {
		p.err = err
		close(p.done)
	})
}

// Done is closed once the outcome is known.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Err is the outcome; nil until Done is closed.
func (p *Pending) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Wait returns the outcome, or ctx's error if ctx ends first.
func (p *Pending) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}
