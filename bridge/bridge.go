// Package bridge moves fedmsg messages between transports along configured
// routes: ZeroMQ to RabbitMQ, STOMP to ZeroMQ, and so on. It receives ready
// transport.Transport values (cmd builds them from the configuration) and
// never imports a concrete transport.
//
// Per route and per delivery:
//
//   - the topic is filtered by the route's patterns (also passed to the
//     source's Subscribe, which may filter by prefix only);
//   - the body is forwarded byte for byte and never re-serialised, except
//     on a resign route, where the bridge's own signature replaces the
//     message's credentials;
//   - on a require-valid route, a message whose signature does not validate
//     is dropped (Nack with transport.ErrPermanent) and counted by reason;
//   - the source is acked only after the sink's Publish returned nil, which
//     is a broker confirmation on sinks with Capabilities().Confirms. On an
//     at-least-once route a sink failure is Nacked (the source redelivers)
//     and the route backs off; on an at-most-once route it is counted as a
//     drop and acked;
//   - loops and duplicates are acked and counted, never forwarded: every
//     published message carries the x-gofedmsg-bridge and
//     x-gofedmsg-hops headers (HeaderBridge, HeaderHops), a window of the
//     msg_ids this bridge published recognises its own output coming back
//     over a transport without headers (ZeroMQ), and a window per route
//     suppresses msg_ids already forwarded. See loop.go.
//
// A route takes its deliveries in order and publishes them in batches of
// what is already waiting, so a source's order is kept while the sink's
// confirmations overlap. To a sink that confirms later (a
// transport.Sender: AMQP) batches go out as they form, while fewer than
// Options.MaxBatch messages are unconfirmed; to any other sink one batch
// of up to Options.MaxBatch is published at a time. See flight.
//
// An at-least-once route whose source cannot redeliver (ZeroMQ) is
// spooled: each message it takes is committed to a durable spool file
// before it counts as received, and sent from there in order, removed
// once the sink confirmed it, sent again after a sink failure or a
// restart. See spooled.go and package spool.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/gofedmsg/fedmsg/internal/retry"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/signing"
	"github.com/gofedmsg/fedmsg/spool"
	"github.com/gofedmsg/fedmsg/transport"
)

// Sentinel errors, wrapped with the route and key at fault.
var (
	// ErrInvalidConfig: the routes or transports configuration is wrong.
	ErrInvalidConfig = errors.New("bridge: invalid config")
	// ErrGuaranteeUnavailable: a route asks for a delivery guarantee its
	// transports cannot give.
	ErrGuaranteeUnavailable = errors.New("bridge: delivery guarantee unavailable")
	// ErrClosed: the bridge was closed.
	ErrClosed = errors.New("bridge: closed")
	// ErrRunning: Run was called on a bridge that already runs.
	ErrRunning = errors.New("bridge: already running")
	// ErrSourceEnded: a route's source closed its channel while the bridge
	// was running (the transport was closed under it).
	ErrSourceEnded = errors.New("bridge: source ended")
	// ErrSinkClosed: a route's sink reported transport.ErrClosed; nothing
	// more can be forwarded on that route.
	ErrSinkClosed = errors.New("bridge: sink closed")
)

// Defaults for the Options fields that have one.
const (
	DefaultRetryMin      = 100 * time.Millisecond
	DefaultRetryMax      = 10 * time.Second
	DefaultSettleTimeout = 10 * time.Second
	DefaultMaxBatch      = 256
)

// Options configure a Bridge. The zero value suits routes that use neither
// require-valid nor resign.
type Options struct {
	// Validator checks signatures on require-valid routes (required there).
	Validator *signing.Validator
	// Signer signs on resign routes (required there).
	Signer signing.Signer
	// Logger receives start-up and drop events; nil discards them.
	Logger *slog.Logger
	// RetryMin and RetryMax bound the pause of an at-least-once route after
	// a failure, doubling from RetryMin while failures repeat, so a broker
	// that is down is not hammered with redeliveries.
	RetryMin, RetryMax time.Duration
	// SettleTimeout bounds one Ack or Nack. Settlement is not tied to the
	// run context, so a message handled while the bridge stops is still
	// acked or handed back.
	SettleTimeout time.Duration

	// BridgeID names this bridge in the HeaderBridge list of the messages
	// it publishes. Empty: New generates hostname-pid-random. Two bridges
	// must not share an id, or each drops the other's output as a loop.
	// It may not contain commas, spaces or control characters.
	BridgeID string
	// MaxHops is how many bridges a message may cross: one arriving with
	// HeaderHops >= MaxHops is not forwarded (counted "max_hops"). 0
	// means DefaultMaxHops, negative means no limit. MaxHops 1 forwards
	// only messages no bridge has carried yet, which stops the first
	// bounce between two bridges running opposite routes between the
	// same pair of header-carrying transports.
	MaxHops int
	// EchoWindow is how many (sink, msg_id) pairs of its own publishes the
	// bridge remembers, all routes together, to recognise its own output
	// coming back on a source without headers (ZeroMQ), counted "echo".
	// 0 means DefaultEchoWindow, negative disables the check. About 100
	// bytes an entry.
	EchoWindow int
	// DedupWindow is how many msg_ids each route remembers having
	// forwarded; a msg_id seen again within it is not forwarded (counted
	// "duplicate"). 0 means DefaultDedupWindow, negative disables it.
	DedupWindow int
	// MaxBatch is the most messages a route has in flight to its sink
	// (sent, not yet confirmed), taken from what its source has already
	// delivered, and so the most a failed sink hands back or sends twice.
	// 0 means DefaultMaxBatch; 1 waits for each message's confirmation
	// before taking the next.
	MaxBatch int
	// Spool configures the durable spools of at-least-once routes whose
	// source cannot redeliver (see spooled.go). Spool.Dir "" refuses
	// such routes.
	Spool SpoolOptions
}

// Bridge runs a set of routes. Its methods are safe for concurrent use.
type Bridge struct {
	routes []*route
	opts   Options
	log    *slog.Logger
	id     string
	echoes *idWindow // (sink, msg_id) this bridge published, all routes

	mu         sync.Mutex
	running    bool
	closed     bool
	stop       chan struct{} // closed by Close: routes take no new delivery
	cancelWork context.CancelFunc
	done       chan struct{} // closed when Run's routes have all returned
	ready      chan struct{} // closed once every route is subscribed
	spoolsOnce sync.Once
}

type route struct {
	cfg      RouteConfig
	patterns []message.Pattern
	src, dst transport.Transport
	stats    counters
	failures int          // consecutive failures, for the backoff; owned by the route's goroutine
	seen     *idWindow    // msg_ids this route forwarded
	spool    *spool.Spool // nil unless the route is spooled (spooled.go)
}

// New checks routes against transports and the options and returns a
// bridge ready to Run. It refuses an at-least-once route whose source
// cannot redeliver or whose sink cannot confirm, saying which. The bridge
// does not own the transports: closing them is the caller's job, after
// Close.
func New(routes []RouteConfig, transports map[string]transport.Transport, opts Options) (*Bridge, error) {
	err := ValidateRoutes(routes, func(name string) bool { return transports[name] != nil })
	if err != nil {
		return nil, err
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = DefaultRetryMin
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = DefaultRetryMax
	}
	opts.RetryMax = max(opts.RetryMax, opts.RetryMin)
	if opts.SettleTimeout <= 0 {
		opts.SettleTimeout = DefaultSettleTimeout
	}
	if err := checkBridgeID(opts.BridgeID); err != nil {
		return nil, err
	}
	if opts.BridgeID == "" {
		opts.BridgeID = newBridgeID()
	}
	if opts.MaxHops == 0 {
		opts.MaxHops = DefaultMaxHops
	}
	if opts.EchoWindow == 0 {
		opts.EchoWindow = DefaultEchoWindow
	}
	if opts.DedupWindow == 0 {
		opts.DedupWindow = DefaultDedupWindow
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	b := &Bridge{opts: opts, log: opts.Logger, id: opts.BridgeID, echoes: newIDWindow(opts.EchoWindow),
		stop: make(chan struct{}), done: make(chan struct{}), ready: make(chan struct{})}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	for _, rc := range routes {
		rc = rc.withDefaults()
		r := &route{cfg: rc, src: transports[rc.From], dst: transports[rc.To], seen: newIDWindow(opts.DedupWindow)}
		for _, p := range rc.Topics {
			c, _ := message.CompilePattern(p) // checked by ValidateRoutes
			r.patterns = append(r.patterns, c)
		}
		switch {
		case rc.Signatures == RequireValid && opts.Validator == nil:
			errs = append(errs, configErr(rc.Name, "signatures", "require-valid needs a signature validator (ca_cert_location, crl_location)"))
		case rc.Signatures == Resign && opts.Signer == nil:
			errs = append(errs, configErr(rc.Name, "signatures", "resign needs the bridge's own certificate to sign with"))
		}
		if rc.Delivery == AtLeastOnce {
			switch {
			case needsSpool(rc, r.src) && opts.Spool.Dir == "":
				errs = append(errs, fmt.Errorf("%w: route %q: key \"delivery\": at-least-once needs a spool: source %q cannot redeliver, and no spool directory is set (bridge.spool_dir, spool_dir or $STATE_DIRECTORY); set one, or use delivery: at-most-once",
					ErrGuaranteeUnavailable, rc.Name, rc.From))
			case needsSpool(rc, r.src):
				if err := b.openSpool(r); err != nil {
					errs = append(errs, err)
				}
			case !r.src.Capabilities().Redelivery:
				errs = append(errs, fmt.Errorf("%w: route %q: key \"delivery\": at-least-once is impossible: source %q cannot redeliver and the route has spool: false, so a message whose forwarding failed would be lost (ZeroMQ PUB/SUB cannot); use delivery: at-most-once, a spool, or a broker queue as the source",
					ErrGuaranteeUnavailable, rc.Name, rc.From))
			}
			if !r.dst.Capabilities().Confirms {
				errs = append(errs, fmt.Errorf("%w: route %q: key \"delivery\": at-least-once is impossible: sink %q cannot confirm, so the bridge cannot know a message arrived before acking the source; use delivery: at-most-once or a sink with confirms (AMQP publisher confirms, STOMP receipts)",
					ErrGuaranteeUnavailable, rc.Name, rc.To))
			}
		}
		b.routes = append(b.routes, r)
	}
	if err := errors.Join(errs...); err != nil {
		b.closeSpools()
		return nil, err
	}
	return b, nil
}

// Run subscribes every route to its source and forwards messages until ctx
// ends or Close is called; both return nil. It fails at once if a
// subscription cannot be made, and stops every route with an error when
// one route cannot go on (its source ended, its sink was closed): a bridge
// missing a route should exit loudly, not limp.
func (b *Bridge) Run(ctx context.Context) error {
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return ErrClosed
	case b.running:
		b.mu.Unlock()
		return ErrRunning
	}
	b.running = true
	work, cancel := context.WithCancel(ctx)
	b.cancelWork = cancel
	b.mu.Unlock()
	defer close(b.done)
	defer b.closeSpools() // after every route returned, before done
	defer cancel()

	srcs := make([]<-chan *transport.Delivery, len(b.routes))
	for i, r := range b.routes {
		ch, err := r.src.Subscribe(work, r.cfg.Topics...)
		if err != nil {
			return fmt.Errorf("bridge: route %q: subscribe to %q: %w", r.cfg.Name, r.cfg.From, err)
		}
		srcs[i] = ch
	}
	for _, r := range b.routes {
		b.logRoute(r)
	}
	close(b.ready)

	errc := make(chan error, len(b.routes))
	var wg sync.WaitGroup
	for i, r := range b.routes {
		wg.Go(func() { errc <- b.runRoute(work, r, srcs[i]) })
	}
	var first error
	for range b.routes {
		if err := <-errc; err != nil && first == nil {
			first = err
			b.log.Error("bridge: route failed, stopping every route", "err", err)
			cancel()
		}
	}
	wg.Wait()
	return first
}

// logRoute states the route and the guarantee it actually gives.
func (b *Bridge) logRoute(r *route) {
	c := r.cfg
	attrs := []any{"route", c.Name, "bridge_id", b.id, "from", c.From, "to", c.To, "topics", c.Topics, "signatures", string(c.Signatures), "delivery", string(c.Delivery)}
	if c.Delivery == AtMostOnce {
		why := "as configured"
		if !r.src.Capabilities().Redelivery {
			why = "the source cannot redeliver"
		} else if !r.dst.Capabilities().Confirms {
			why = "the sink cannot confirm"
		}
		attrs = append(attrs, "guarantee", "messages may be lost if the sink fails: "+why)
	} else if r.spool != nil {
		st := r.spool.Stats()
		attrs = append(attrs, "guarantee", "each message is on disk in the spool before it counts as received, sent to the sink in order and removed once confirmed: "+
			"nothing the bridge received is lost through a sink outage or a crash of the bridge (kill -9); what the source published while the bridge was down is lost by the source",
			"spool", r.spool.Path(), "spool_recovered", st.Recovered)
	} else {
		attrs = append(attrs, "guarantee", "source acked only after the sink confirmed; failures are redelivered")
	}
	b.log.Info("bridge: route started", attrs...)
}

// Close stops the routes: they take no new delivery, and the one each
// route is handling is finished (forwarded and acked, or handed back)
// until ctx ends; then in-flight work is cancelled. It does not close the
// transports. It returns ctx's error if the routes did not stop in time.
func (b *Bridge) Close(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.stop)
	}
	running, cancel := b.running, b.cancelWork
	b.mu.Unlock()
	if !running {
		b.closeSpools()
		return nil
	}
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
	}
	// Out of patience: abort publishes and subscriptions, then wait
	// briefly for the goroutines, which now only settle and return.
	cancel()
	select {
	case <-b.done:
	case <-time.After(b.opts.SettleTimeout):
	}
	return fmt.Errorf("bridge: close: %w", ctx.Err())
}

// ID is the bridge's id, as written in HeaderBridge.
func (b *Bridge) ID() string { return b.id }

// Ready is closed once Run has subscribed every route. A source without
// durable queues (ZeroMQ, memory) delivers nothing published before then.
func (b *Bridge) Ready() <-chan struct{} { return b.ready }

// Stats returns a snapshot of every route's counters, in configuration
// order.
func (b *Bridge) Stats() []RouteStats {
	out := make([]RouteStats, len(b.routes))
	for i, r := range b.routes {
		out[i] = r.stats.snapshot(r.cfg.Name)
	}
	return out
}

func (b *Bridge) runRoute(ctx context.Context, r *route, src <-chan *transport.Delivery) error {
	if r.spool != nil {
		return b.runSpooled(ctx, r, src)
	}
	f := newFlight(r.dst)
	// Whatever way the route ends, what it sent is settled first.
	defer f.drain(b, ctx, r)
	for {
		// A stop request wins over a waiting delivery, so Close is not
		// delayed by a busy source.
		select {
		case <-b.stop:
			return nil
		case <-ctx.Done():
			return nil
		default:
		}
		room := b.opts.MaxBatch - f.messages
		in := src
		if room <= 0 {
			// As many messages in flight as allowed: only a
			// confirmation lets the route go on (a nil channel is
			// never ready).
			in = nil
		}
		var first *transport.Delivery
		select {
		case <-b.stop:
			return nil
		case <-ctx.Done():
			return nil
		case <-f.oldestDone():
			if err := f.settleOldest(b, ctx, r); err != nil {
				return err
			}
			continue
		case d, ok := <-in:
			if !ok {
				return b.sourceEnded(ctx, r)
			}
			first = d
		}
		batch, ended := b.takeWaiting(ctx, r, src, first, f.newBatch(b.opts.MaxBatch), room)
		if len(batch) > 0 {
			if err := f.send(b, ctx, r, batch); err != nil {
				return err
			}
		}
		if ended {
			return b.sourceEnded(ctx, r)
		}
	}
}

// flight is a route's batches sent to the sink and not yet settled.
//
// A sink that is a transport.Sender (AMQP with confirms) takes a batch and
// confirms it later: the route sends what is waiting as soon as it comes,
// while fewer than Options.MaxBatch messages are unconfirmed, and settles
// each batch, in order, when its confirmation comes. The broker always has
// work and a message never waits for an earlier batch's round trip. With
// any other sink a batch is published and settled before the next.
type flight struct {
	sender   transport.Sender // nil: Publish one batch at a time
	batches  []sentBatch      // oldest first
	messages int              // in all of batches
	reuse    []outgoing       // the batch buffer, when batches are settled at once
}

type sentBatch struct {
	batch   []outgoing
	pending *transport.Pending
}

func newFlight(sink transport.Transport) *flight {
	f := &flight{}
	f.sender, _ = sink.(transport.Sender)
	return f
}

// newBatch returns an empty batch to fill: a new one when batches stay in
// flight, else the same buffer every time.
func (f *flight) newBatch(capacity int) []outgoing {
	if f.sender != nil {
		return make([]outgoing, 0, min(capacity, 16))
	}
	if f.reuse == nil {
		f.reuse = make([]outgoing, 0, capacity)
	}
	return f.reuse[:0]
}

// oldestDone is closed when the oldest batch's outcome is known; nil
// (never ready in a select) when nothing is in flight.
func (f *flight) oldestDone() <-chan struct{} {
	if len(f.batches) == 0 {
		return nil
	}
	return f.batches[0].pending.Done()
}

// send sends batch: into flight with a Sender, else published and
// settled at once. Only a condition that ends the route is returned.
func (f *flight) send(b *Bridge, ctx context.Context, r *route, batch []outgoing) error {
	if f.sender == nil {
		return b.publish(ctx, r, batch)
	}
	p, err := f.sender.Send(ctx, messagesOf(batch)...)
	if err != nil && len(batch) > 1 && (errors.Is(err, transport.ErrBadMessage) || errors.Is(err, transport.ErrPermanent)) {
		// One message spoiled the batch before it was sent: send them
		// one by one now, so that only that one is dropped and the
		// others keep their place in the sink's stream (settle's
		// one-by-one Publish would come after later batches).
		for i := range batch {
			if err := f.send(b, ctx, r, batch[i:i+1]); err != nil {
				return err
			}
		}
		return nil
	}
	if err != nil {
		if len(f.batches) == 0 {
			return b.settle(ctx, r, batch, err)
		}
		// Earlier batches are still in flight: this outcome waits its
		// turn, so deliveries are settled in source order and a retry's
		// pause does not hold back the settling of batches before it.
		p = transport.NewPending()
		p.Resolve(err)
	}
	f.batches = append(f.batches, sentBatch{batch: batch, pending: p})
	f.messages += len(batch)
	return nil
}

// settleOldest settles the oldest batch by its (known) outcome.
func (f *flight) settleOldest(b *Bridge, ctx context.Context, r *route) error {
	sb := f.batches[0]
	f.batches[0] = sentBatch{}
	f.batches = f.batches[1:]
	f.messages -= len(sb.batch)
	return b.settle(ctx, r, sb.batch, sb.pending.Err())
}

// drain settles every batch in flight, waiting for the outcomes: the
// sink gives up on the confirmations when ctx ends, and those messages
// are then handed back.
func (f *flight) drain(b *Bridge, ctx context.Context, r *route) {
	for len(f.batches) > 0 {
		<-f.oldestDone()
		_ = f.settleOldest(b, ctx, r)
	}
}

func messagesOf(batch []outgoing) []*transport.Message {
	msgs := make([]*transport.Message, len(batch))
	for i, o := range batch {
		msgs[i] = o.msg
	}
	return msgs
}

func (b *Bridge) sourceEnded(ctx context.Context, r *route) error {
	if ctx.Err() != nil || b.stopping() {
		return nil
	}
	return fmt.Errorf("%w: route %q: the subscription to %q was closed", ErrSourceEnded, r.cfg.Name, r.cfg.From)
}

func (b *Bridge) stopping() bool {
	select {
	case <-b.stop:
		return true
	default:
		return false
	}
}

// outgoing is a delivery the route decided to forward, with the window
// entries it holds while its publish is in flight.
type outgoing struct {
	d       *transport.Delivery
	msg     *transport.Message
	id      string // msg_id, "" when unknown
	seenTok uint64 // the route's duplicate-window entry
	echo    string // echo-window key, "" when not tracked
	echoTok uint64
}

// take decides what becomes of d: settled at once (filtered, a loop, a
// duplicate, an invalid signature) or appended to batch for publishing.
// takeWaiting takes first, then whatever else src already holds, up to
// limit deliveries in all, without waiting for more: at a low rate a
// batch is one message and nothing is delayed; under load batches grow
// and the sink's confirmations overlap instead of each costing a round
// trip. ended reports that src closed.
func (b *Bridge) takeWaiting(ctx context.Context, r *route, src <-chan *transport.Delivery, first *transport.Delivery, batch []outgoing, limit int) (_ []outgoing, ended bool) {
	batch = b.take(ctx, r, first, batch)
	for taken := 1; taken < limit; taken++ {
		select {
		case d, ok := <-src:
			if !ok {
				return batch, true
			}
			batch = b.take(ctx, r, d, batch)
		default:
			return batch, false
		}
	}
	return batch, false
}

func (b *Bridge) take(ctx context.Context, r *route, d *transport.Delivery, batch []outgoing) []outgoing {
	r.stats.received.Add(1)
	m := d.Message
	if m == nil {
		b.drop(r, d, DropMalformed, errors.New("delivery without a message"))
		return batch
	}
	if !message.MatchAny(r.patterns, m.Topic) {
		r.stats.filtered.Add(1)
		b.ack(r, d)
		return batch
	}

	// Loop prevention and deduplication (see loop.go), before any costly
	// signature work.
	ids, hops := crossed(m.Headers)
	switch {
	case slices.Contains(ids, b.id):
		b.suppress(r, d, DropLoop, "")
		return batch
	case b.opts.MaxHops > 0 && hops >= b.opts.MaxHops:
		b.suppress(r, d, DropMaxHops, "")
		return batch
	}
	var id string
	if b.echoes != nil || r.seen != nil {
		id = msgID(m.ID, m.Body)
	}
	if id != "" && b.echoes.contains(echoKey(r.cfg.From, id)) {
		b.suppress(r, d, DropEcho, id)
		return batch
	}
	// On a require-valid route duplicates are looked for after
	// validation, so that a tampered copy of a message already forwarded
	// is counted as tampered, not as a duplicate.
	if r.cfg.Signatures != RequireValid && b.duplicate(r, d, id) {
		return batch
	}

	body := m.Body
	switch r.cfg.Signatures {
	case RequireValid:
		if err := b.opts.Validator.ValidateBytes(ctx, body); err != nil {
			if (trustProblem(err) && r.cfg.Delivery == AtLeastOnce) || ctx.Err() != nil {
				b.retry(ctx, r, []outgoing{{d: d}}, err)
				return batch
			}
			b.drop(r, d, signatureReason(err), err)
			return batch
		}
		if b.duplicate(r, d, id) {
			return batch
		}
	case Resign:
		signed, err := signing.Resign(b.opts.Signer, body)
		if err != nil {
			b.drop(r, d, DropResignFailed, err)
			return batch
		}
		body = signed
	}

	o := outgoing{d: d, id: id, msg: &transport.Message{Topic: m.Topic, Body: body, ID: m.ID,
		Headers: stampHeaders(maps.Clone(m.Headers), b.id, ids, hops)}}
	if id != "" {
		// Held as pending from now: a second copy later in the same
		// batch is a duplicate, and this message's echo may come back
		// on another route before its publish returns.
		o.seenTok = r.seen.add(id, false)
		if b.echoes != nil {
			o.echo = echoKey(r.cfg.To, id)
			o.echoTok = b.echoes.add(o.echo, false)
		}
	}
	return append(batch, o)
}

// publish sends batch to the route's sink in one Publish (in order) and
// settles every delivery by the outcome. Only a condition that ends the
// route is returned.
func (b *Bridge) publish(ctx context.Context, r *route, batch []outgoing) error {
	return b.settle(ctx, r, batch, r.dst.Publish(ctx, messagesOf(batch)...))
}

// settleWindows ends the pending entries batch holds in the duplicate and
// echo windows: kept when its messages went out (or are as good as out),
// removed when they did not, so a later copy is not taken for one.
func (b *Bridge) settleWindows(r *route, batch []outgoing, out bool) {
	for _, o := range batch {
		if out {
			r.seen.confirm(o.id)
			b.echoes.confirm(o.echo)
		} else {
			r.seen.remove(o.id, o.seenTok)
			b.echoes.remove(o.echo, o.echoTok)
		}
	}
}

// settle settles every delivery of batch by err, the outcome of publishing
// it. Only a condition that ends the route is returned.
func (b *Bridge) settle(ctx context.Context, r *route, batch []outgoing, err error) error {
	if len(batch) > 1 && (errors.Is(err, transport.ErrBadMessage) || errors.Is(err, transport.ErrPermanent)) {
		// One message spoiled the batch: publish them one by one, so
		// that only that one is dropped. Any the sink had accepted
		// before refusing go out twice, which at-least-once allows.
		for i := range batch {
			if err := b.publish(ctx, r, batch[i:i+1]); err != nil {
				return err
			}
		}
		return nil
	}
	b.settleWindows(r, batch, err == nil)
	n := uint64(len(batch))
	switch {
	case err == nil:
		r.stats.forwarded.Add(n)
		r.failures = 0
		b.ackAll(r, batch)
		return nil
	case errors.Is(err, transport.ErrClosed):
		// Handed back so a broker source redelivers them to whoever
		// consumes next; this route cannot.
		b.nackAll(r, batch, err)
		r.stats.retried.Add(n)
		return fmt.Errorf("%w: route %q: sink %q: %w", ErrSinkClosed, r.cfg.Name, r.cfg.To, err)
	case ctx.Err() != nil:
		// Stopping: the publish was cut short, so the messages are
		// handed back rather than counted as lost.
		b.nackAll(r, batch, err)
		r.stats.retried.Add(n)
		return nil
	case errors.Is(err, transport.ErrBadMessage) || errors.Is(err, transport.ErrPermanent):
		b.drop(r, batch[0].d, DropSinkRejected, err)
		return nil
	case r.cfg.Delivery == AtMostOnce:
		r.stats.dropped[DropSinkError].Add(n)
		b.log.Warn("bridge: sink failed, messages lost (at-most-once)", "route", r.cfg.Name, "messages", n,
			"first_topic", batch[0].msg.Topic, "first_msg_id", batch[0].id, "err", err)
		b.ackAll(r, batch)
		return nil
	default:
		b.retry(ctx, r, batch, err)
		return nil
	}
}

// retry hands batch back to its source and pauses the route, doubling
// the pause while failures repeat.
func (b *Bridge) retry(ctx context.Context, r *route, batch []outgoing, cause error) {
	r.stats.retried.Add(uint64(len(batch)))
	b.nackAll(r, batch, cause)
	if ctx.Err() != nil {
		return
	}
	pause := retry.Exponential(r.failures, b.opts.RetryMin, b.opts.RetryMax)
	r.failures++
	m := batch[0].d.Message
	b.log.Warn("bridge: forwarding failed, handed back for redelivery", "route", r.cfg.Name, "messages", len(batch),
		"first_topic", m.Topic, "first_msg_id", msgID(m.ID, m.Body), "retry_in", pause, "err", cause)
	t := time.NewTimer(pause)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-b.stop:
	}
}

// drop settles d as never to be redelivered and counts why.
func (b *Bridge) drop(r *route, d *transport.Delivery, reason DropReason, cause error) {
	r.stats.dropped[reason].Add(1)
	attrs := []any{"route", r.cfg.Name, "reason", reason.String(), "err", cause}
	if m := d.Message; m != nil {
		attrs = append(attrs, "topic", m.Topic, "msg_id", msgID(m.ID, m.Body))
	}
	b.log.Warn("bridge: message dropped", attrs...)
	b.nack(r, d, fmt.Errorf("%w: %s: %w", transport.ErrPermanent, reason, cause))
}

// duplicate suppresses d when the route forwarded its msg_id recently.
func (b *Bridge) duplicate(r *route, d *transport.Delivery, id string) bool {
	if id == "" || !r.seen.contains(id) {
		return false
	}
	b.suppress(r, d, DropDuplicate, id)
	return true
}

// suppress acks d, which loop prevention or deduplication stopped, and
// counts why. It is routine in a bidirectional setup, so it logs at debug
// level only.
func (b *Bridge) suppress(r *route, d *transport.Delivery, reason DropReason, id string) {
	r.stats.dropped[reason].Add(1)
	b.log.Debug("bridge: message not forwarded", "route", r.cfg.Name, "reason", reason.String(),
		"topic", d.Message.Topic, "msg_id", id, "bridges", d.Message.Headers[HeaderBridge], "hops", d.Message.Headers[HeaderHops])
	b.ack(r, d)
}

// settleCtx is detached from the run context: a delivery handled while
// the bridge stops must still be settled.
func (b *Bridge) settleCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), b.opts.SettleTimeout)
}

func (b *Bridge) ack(r *route, d *transport.Delivery) {
	b.ackAll(r, []outgoing{{d: d}})
}

func (b *Bridge) nack(r *route, d *transport.Delivery, cause error) {
	b.nackAll(r, []outgoing{{d: d}}, cause)
}

// ackAll and nackAll settle a batch under one SettleTimeout.
func (b *Bridge) ackAll(r *route, batch []outgoing) {
	ctx, cancel := b.settleCtx()
	defer cancel()
	for _, o := range batch {
		if err := o.d.Ack(ctx); err != nil {
			r.stats.settleErrors.Add(1)
			b.log.Warn("bridge: ack failed", "route", r.cfg.Name, "source", o.d.Source, "err", err)
		}
	}
}

func (b *Bridge) nackAll(r *route, batch []outgoing, cause error) {
	ctx, cancel := b.settleCtx()
	defer cancel()
	for _, o := range batch {
		if err := o.d.Nack(ctx, cause); err != nil {
			r.stats.settleErrors.Add(1)
			b.log.Warn("bridge: nack failed", "route", r.cfg.Name, "source", o.d.Source, "err", err)
		}
	}
}
