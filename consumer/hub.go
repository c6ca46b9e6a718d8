package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/transport"
)

// Validator checks an envelope's signature; *signing.Validator is one.
type Validator interface {
	Validate(ctx context.Context, env map[string]any) error
}

// Defaults of Options.
const (
	DefaultQueue         = 16
	DefaultShutdownGrace = 30 * time.Second
	settleTimeout        = 5 * time.Second
)

// Options configure a Hub.
type Options struct {
	// ValidateSignatures is the configuration's validate_signatures: what
	// a consumer whose own ValidateSignatures is nil does.
	ValidateSignatures bool
	// Validator validates signatures; required when any consumer's
	// effective validate_signatures is true.
	Validator Validator
	// Logger receives rejections and handler errors; nil discards them.
	Logger *slog.Logger
	// Queue is how many messages may wait for each consumer before the
	// hub stops reading the transport (default DefaultQueue).
	Queue int
	// ShutdownGrace is how long the message in hand may still run after
	// Run's ctx ended (default DefaultShutdownGrace); its handler's ctx is
	// cancelled then.
	ShutdownGrace time.Duration
	// RedeliveryDelay is how long a message whose handler failed is held
	// before it is handed back (Nack) to a transport that redelivers it,
	// doubling while failures repeat up to MaxRedeliveryDelay; any success
	// resets it (see redelivery.go). Defaults DefaultRedeliveryDelay and
	// DefaultMaxRedeliveryDelay; a negative RedeliveryDelay hands back at
	// once.
	RedeliveryDelay, MaxRedeliveryDelay time.Duration

	// StatusDirectory is status_directory: when set, each consumer's
	// status file is kept under it (status.go, spec §8.4).
	StatusDirectory string
	// ProcessName is the folder under StatusDirectory (default
	// DefaultProcessName, "fedmsg-hub").
	ProcessName string
	// Archive, with StatusDirectory, is where each consumer's backlog is
	// fetched from at start-up (datagrepper_url; backlog.go).
	Archive Archive
	// SkipLastMessage is skip_last_message: the backlog's first message is
	// skipped too.
	SkipLastMessage bool
	// BacklogRetry and BacklogMaxRetry pace retries of a failing archive
	// (defaults DefaultBacklogRetry, DefaultBacklogMaxRetry).
	BacklogRetry, BacklogMaxRetry time.Duration
}

// Stats are one consumer's counters.
type Stats struct {
	Consumer string
	Received uint64            // messages whose topic matched
	Handled  uint64            // handler returned nil
	Failed   uint64            // handler returned an error (Nack)
	Rejected map[string]uint64 // by reason: RejectTopicMismatch, RejectSignature, RejectMalformed
}

// Hub dispatches one transport subscription to its consumers.
type Hub struct {
	opts    Options
	log     *slog.Logger
	runners []*runner
	all     bool // some consumer takes every topic
}

type runner struct {
	c        Consumer
	patterns []message.Pattern
	validate bool
	jobs     chan job
	log      *slog.Logger
	v        Validator

	received, handled, failed atomic.Uint64
	mu                        sync.Mutex
	rejected                  map[string]uint64
	act                       activity // for the monitoring report (monitor.go)

	status *statusFile // nil without status_directory (status.go)
}

type job struct {
	d *transport.Delivery
	s *settlement
}

// New checks the consumers and builds a hub.
func New(consumers []Consumer, o Options) (*Hub, error) {
	if len(consumers) == 0 {
		return nil, ErrNoConsumers
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.RedeliveryDelay == 0 {
		o.RedeliveryDelay = DefaultRedeliveryDelay
	}
	if o.MaxRedeliveryDelay <= 0 {
		o.MaxRedeliveryDelay = DefaultMaxRedeliveryDelay
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = DefaultShutdownGrace
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{opts: o, log: log}
	seen := map[string]bool{}
	for i, c := range consumers {
		switch {
		case c.Name == "":
			return nil, fmt.Errorf("%w (consumer %d)", ErrNoName, i)
		case seen[c.Name]:
			return nil, fmt.Errorf("%w: %q", ErrDuplicate, c.Name)
		case c.Handler == nil:
			return nil, fmt.Errorf("%w: %q", ErrNoHandler, c.Name)
		}
		seen[c.Name] = true
		r := &runner{c: c, validate: EffectiveValidate(c.ValidateSignatures, o.ValidateSignatures),
			v: o.Validator, log: log.With("consumer", c.Name), rejected: map[string]uint64{}}
		if r.validate && o.Validator == nil {
			return nil, fmt.Errorf("%w (consumer %q)", ErrNoValidator, c.Name)
		}
		if err := h.attachStatus(r); err != nil {
			return nil, err
		}
		for _, t := range c.Topics {
			if t == "" || t == "*" {
				r.patterns = nil
				break
			}
			p, err := message.CompilePattern(t)
			if err != nil {
				return nil, fmt.Errorf("consumer %q: topic %q: %w", c.Name, t, err)
			}
			r.patterns = append(r.patterns, p)
		}
		if len(r.patterns) == 0 {
			h.all = true
		}
		h.runners = append(h.runners, r)
	}
	return h, nil
}

// EffectiveValidate is spec §8.3 step 2: the consumer's own setting when
// it has one, else the configuration's.
func EffectiveValidate(own *bool, config bool) bool {
	if own != nil {
		return *own
	}
	return config
}

// Patterns is what the hub subscribes to: every consumer's topics, or
// nothing (every topic) when one of them takes all.
func (h *Hub) Patterns() []string {
	if h.all {
		return nil
	}
	var out []string
	for _, r := range h.runners {
		for _, p := range r.patterns {
			if !slices.Contains(out, p.String()) {
				out = append(out, p.String())
			}
		}
	}
	return out
}

// Validates reports each consumer's effective validate_signatures.
func (h *Hub) Validates() map[string]bool {
	out := map[string]bool{}
	for _, r := range h.runners {
		out[r.c.Name] = r.validate
	}
	return out
}

// Stats returns each consumer's counters, in the consumers' order.
func (h *Hub) Stats() []Stats {
	out := make([]Stats, 0, len(h.runners))
	for _, r := range h.runners {
		r.mu.Lock()
		rej := make(map[string]uint64, len(r.rejected))
		for k, v := range r.rejected {
			rej[k] = v
		}
		r.mu.Unlock()
		out = append(out, Stats{Consumer: r.c.Name, Received: r.received.Load(), Handled: r.handled.Load(),
			Failed: r.failed.Load(), Rejected: rej})
	}
	return out
}

// errShutdown is the Nack cause of a message no consumer started before
// the hub stopped: it is redelivered where the transport can.
var errShutdown = errors.New("consumer: hub stopped before handling the message")

// Run subscribes to t and dispatches until ctx ends (then it returns nil
// once the messages in hand are handled, within ShutdownGrace) or the
// subscription ends (an error). Messages queued but not started are
// Nacked, so a transport that redelivers gives them again. A hub runs
// once.
func (h *Hub) Run(ctx context.Context, t transport.Transport) error {
	// The subscription ends with subCtx, after the workers have settled
	// what they hold (a queue's settlement goes through its subscription).
	subCtx, cancelSub := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSub()
	ch, err := t.Subscribe(subCtx, h.Patterns()...)
	if err != nil {
		return fmt.Errorf("consumer: subscribe: %w", err)
	}
	// Handlers get a context that outlives ctx by ShutdownGrace, so the
	// message in hand is finished rather than cut off.
	hctx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	stopGrace := context.AfterFunc(ctx, func() {
		time.AfterFunc(h.opts.ShutdownGrace, cancelHandlers)
	})
	defer stopGrace()

	var wg sync.WaitGroup
	for _, r := range h.runners {
		r.jobs = make(chan job, h.opts.Queue)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.work(ctx, hctx)
		}()
	}
	var rd *redelivery
	if h.opts.RedeliveryDelay > 0 && t.Capabilities().Redelivery {
		rd = newRedelivery(h.opts.RedeliveryDelay, h.opts.MaxRedeliveryDelay)
	}
	h.setInitialized(true)
	stopBacklogs := h.startBacklogs(ctx) // alongside live traffic (backlog.go)
	runErr := h.read(ctx, ch, rd)
	stopBacklogs()
	h.setInitialized(false)
	for _, r := range h.runners {
		close(r.jobs)
	}
	wg.Wait()
	rd.stop() // while the subscription still settles
	return runErr
}

func (h *Hub) read(ctx context.Context, ch <-chan *transport.Delivery, rd *redelivery) error {
	for {
		var d *transport.Delivery
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case d, ok = <-ch:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("consumer: the subscription ended: %w", transport.ErrClosed)
			}
		}
		var targets []*runner
		for _, r := range h.runners {
			if message.MatchAny(r.patterns, d.Message.Topic) {
				targets = append(targets, r)
			}
		}
		if len(targets) == 0 {
			settle(ctx, d, nil, h.log)
			continue
		}
		s := &settlement{d: d, pending: len(targets), log: h.log, rd: rd}
		for i, r := range targets {
			r.act.queued() // before the send: the worker may take it at once
			select {
			case r.jobs <- job{d: d, s: s}:
			case <-ctx.Done():
				for range targets[i:] {
					s.done(ctx, errShutdown)
				}
				return nil
			}
		}
	}
}

// work handles the runner's jobs one at a time, in order. Once ctx has
// ended, jobs not started are given back (Nack).
func (r *runner) work(ctx, hctx context.Context) {
	for j := range r.jobs {
		if ctx.Err() != nil {
			j.s.done(ctx, errShutdown)
			continue
		}
		j.s.done(ctx, r.handleTimed(hctx, j.d))
	}
}

// handle is spec §8.3 for one delivery: the error is the handler's (a
// rejected message returns nil, it is acknowledged).
func (r *runner) handle(ctx context.Context, d *transport.Delivery) error {
	defer r.status.handled(d)
	r.received.Add(1)
	m, reason, err := r.prepare(ctx, d)
	if reason != "" {
		r.mu.Lock()
		r.rejected[reason]++
		r.mu.Unlock()
		r.log.Warn("rejected message", "topic", d.Message.Topic, "source", d.Source, "msg_id", msgID(m), "reason", reason, "err", err)
		return nil
	}
	r.status.pre(m)
	err = r.call(ctx, m)
	r.status.post(m)
	if err != nil {
		r.failed.Add(1)
		r.log.Warn("handler failed", "topic", m.Topic, "msg_id", msgID(m), "err", err)
		return err
	}
	r.handled.Add(1)
	return nil
}

// call runs the handler; a panic becomes an error.
func (r *runner) call(ctx context.Context, m *Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("consumer %q: handler panicked: %v", r.c.Name, p)
		}
	}()
	return r.c.Handler(ctx, m)
}

// prepare decodes (wrapping a non-envelope) and, when this consumer
// validates, checks the topic and the signature. reason is set when the
// message is rejected.
func (r *runner) prepare(ctx context.Context, d *transport.Delivery) (m *Message, reason string, err error) {
	env, body, wrapped, err := decodeEnvelope(d.Message.Topic, d.Message.Body)
	if err != nil {
		return nil, RejectMalformed, err
	}
	m = &Message{Topic: d.Message.Topic, Body: body, Envelope: env, Wrapped: wrapped, Raw: d.Message.Body,
		Headers: d.Message.Headers, Source: d.Source}
	if !r.validate {
		return m, "", nil
	}
	if t, _ := env[message.FieldTopic].(string); t != d.Message.Topic {
		return m, RejectTopicMismatch, fmt.Errorf("%w: transport %q, envelope %q", ErrTopicMismatch, d.Message.Topic, t)
	}
	if err := r.v.Validate(ctx, env); err != nil {
		return m, RejectSignature, err
	}
	m.Validated = true
	return m, "", nil
}

func msgID(m *Message) any {
	if m == nil {
		return nil
	}
	return m.Envelope["msg_id"]
}

// settlement acknowledges a delivery once every consumer it went to is
// done: Ack when none failed, else Nack with the first error.
type settlement struct {
	d   *transport.Delivery
	log *slog.Logger
	rd  *redelivery // nil: a failed message is handed back at once

	mu      sync.Mutex
	pending int
	cause   error
}

func (s *settlement) done(ctx context.Context, err error) {
	s.mu.Lock()
	if err != nil && s.cause == nil {
		s.cause = err
	}
	s.pending--
	last, cause := s.pending == 0, s.cause
	s.mu.Unlock()
	if !last {
		return
	}
	switch {
	case cause == nil:
		s.rd.succeeded()
	case s.rd != nil && !errors.Is(cause, errShutdown):
		s.rd.handBack(ctx, s, cause)
		return
	}
	settle(ctx, s.d, cause, s.log)
}

func settle(ctx context.Context, d *transport.Delivery, cause error, log *slog.Logger) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	var err error
	if cause == nil {
		err = d.Ack(sctx)
	} else {
		err = d.Nack(sctx, cause)
	}
	if err != nil {
		log.Warn("settling a delivery failed", "topic", d.Message.Topic, "ack", cause == nil, "err", err)
	}
}
