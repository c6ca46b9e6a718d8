package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/transport"
)

// sender is a transport.Sender sink around the memory transport whose
// confirmations the test gives: Send records the batch, hands it to the
// memory transport's Publish (so a consumer of the sink sees it) and
// returns a Pending that stays open until the test resolves it. As the
// Sender contract asks, a Pending still open when Send's ctx ends
// resolves with ctx's error.
type sender struct {
	transport.Transport

	open    chan struct{}                 // non-nil: the first Send blocks until it is closed
	holding chan struct{}                 // closed when the first Send starts to block on open
	sendErr func(call int) error          // non-nil result: Send fails at once with it
	refuse  func(*transport.Message) bool // a batch holding such a message is refused (ErrBadMessage)
	// refuseAtSend: Send itself fails with the refusal, as AMQP's does for
	// a message it cannot carry; else the Pending resolves with it.
	refuseAtSend bool

	mu        sync.Mutex
	sent      []*sentCall
	maxFlight int           // most messages ever sent and not yet resolved
	sends     chan struct{} // a token per Send call
	publishes [][]string    // bodies of each Publish call (the bridge's one-by-one path)
}

type sentCall struct {
	bodies  []string
	pending *transport.Pending
}

func newSender(tr transport.Transport) *sender {
	return &sender{Transport: tr, sends: make(chan struct{}, 1024)}
}

func bodiesOf(msgs []*transport.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Body)
	}
	return out
}

func (s *sender) Send(ctx context.Context, msgs ...*transport.Message) (*transport.Pending, error) {
	s.mu.Lock()
	call := len(s.sent)
	s.mu.Unlock()
	if call == 0 && s.open != nil {
		close(s.holding)
		select {
		case <-s.open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	defer func() { s.sends <- struct{}{} }()
	sendErr := s.sendErr
	if s.refuseAtSend && s.refuse != nil {
		sendErr = func(int) error {
			if slices.ContainsFunc(msgs, s.refuse) {
				return fmt.Errorf("%w: refused", transport.ErrBadMessage)
			}
			return nil
		}
	}
	if sendErr != nil {
		if err := sendErr(call); err != nil {
			s.mu.Lock()
			s.sent = append(s.sent, &sentCall{bodies: bodiesOf(msgs)})
			s.mu.Unlock()
			return nil, err
		}
	}
	p := transport.NewPending()
	// A refusal is the outcome before the test can see the call (and
	// resolve it otherwise).
	refused := s.refuse != nil && slices.ContainsFunc(msgs, s.refuse)
	if refused {
		p.Resolve(fmt.Errorf("%w: refused", transport.ErrBadMessage))
	}
	s.mu.Lock()
	s.sent = append(s.sent, &sentCall{bodies: bodiesOf(msgs), pending: p})
	if n := s.unresolvedLocked(); n > s.maxFlight {
		s.maxFlight = n
	}
	s.mu.Unlock()
	if refused {
		return p, nil
	}
	if err := s.Transport.Publish(ctx, msgs...); err != nil {
		p.Resolve(err)
		return p, nil
	}
	go func() {
		select {
		case <-ctx.Done():
			p.Resolve(ctx.Err())
		case <-p.Done():
		}
	}()
	return p, nil
}

// Publish is what the bridge falls back to for sending a refused batch
// one message at a time.
func (s *sender) Publish(ctx context.Context, msgs ...*transport.Message) error {
	s.mu.Lock()
	s.publishes = append(s.publishes, bodiesOf(msgs))
	s.mu.Unlock()
	if s.refuse != nil && slices.ContainsFunc(msgs, s.refuse) {
		return fmt.Errorf("%w: refused", transport.ErrBadMessage)
	}
	return s.Transport.Publish(ctx, msgs...)
}

func (s *sender) unresolvedLocked() int {
	n := 0
	for _, c := range s.sent {
		if c.pending != nil && !isDone(c.pending) {
			n += len(c.bodies)
		}
	}
	return n
}

func isDone(p *transport.Pending) bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

// waitSends waits until Send was called n times in all.
func (s *sender) waitSends(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		s.mu.Lock()
		got := len(s.sent)
		s.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-s.sends:
		case <-deadline:
			t.Fatalf("%d Send calls after 5s, want %d", got, n)
		}
	}
}

// noMoreSends checks that the route does not call Send again for a while.
func (s *sender) noMoreSends(t *testing.T, after int) {
	t.Helper()
	time.Sleep(50 * time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sent) != after {
		t.Fatalf("Send called %d times, want %d: the route did not wait for a confirmation", len(s.sent), after)
	}
}

func (s *sender) call(i int) *sentCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent[i]
}

func (s *sender) calls() []*sentCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
}

func (s *sender) unresolved() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unresolvedLocked()
}

// settlements records how the route settled each delivery with its
// source, in the order it did.
type settlements struct {
	mu     sync.Mutex
	events []string // "ack <body>" or "nack <body>"
	ch     chan struct{}
}

func (r *settlements) add(ev string) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

func (r *settlements) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// waitN waits until n settlements were recorded and returns them.
func (r *settlements) waitN(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ev := r.snapshot(); len(ev) >= n {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("settlements after 5s: %q, want %d", r.snapshot(), n)
		}
		select {
		case <-r.ch:
		case <-time.After(time.Millisecond):
		}
	}
}

// recorded is a memory source that, like queued, hands its deliveries
// over through a buffered channel, and whose deliveries record their
// settlement before passing it on to the memory transport (which
// redelivers a Nacked message).
type recorded struct {
	transport.Transport
	log *settlements
	ch  chan *transport.Delivery
}

func (r *recorded) Subscribe(ctx context.Context, patterns ...string) (<-chan *transport.Delivery, error) {
	in, err := r.Transport.Subscribe(ctx, patterns...)
	if err != nil {
		return nil, err
	}
	go func() {
		defer close(r.ch)
		for d := range in {
			r.ch <- transport.NewDelivery(d.Message, d.Source, recordingSettler{d: d, log: r.log})
		}
	}()
	return r.ch, nil
}

type recordingSettler struct {
	d   *transport.Delivery
	log *settlements
}

func (s recordingSettler) Ack(ctx context.Context) error {
	s.log.add("ack " + string(s.d.Message.Body))
	return s.d.Ack(ctx)
}

func (s recordingSettler) Nack(ctx context.Context, cause error) error {
	s.log.add("nack " + string(s.d.Message.Body))
	return s.d.Nack(ctx, cause)
}

// flightRig is one running route from a recorded memory source to a
// sender sink; setup configures the sink before the route starts.
type flightRig struct {
	src  *recorded
	sink *sender
	log  *settlements
	b    *Bridge
	out  <-chan *transport.Message
	errc <-chan error
}

func newFlightRig(t *testing.T, opts Options, route RouteConfig, setup func(*sender)) *flightRig {
	t.Helper()
	log := &settlements{ch: make(chan struct{}, 1)}
	src := &recorded{Transport: newMemory(t), log: log, ch: make(chan *transport.Delivery, 1024)}
	dst := newMemory(t)
	sink := newSender(dst)
	if setup != nil {
		setup(sink)
	}
	route.Name, route.From, route.To = "r", "src", "dst"
	b, err := New([]RouteConfig{route}, map[string]transport.Transport{"src": src, "dst": sink}, opts)
	if err != nil {
		t.Fatal(err)
	}
	out := subscribe(t, dst)
	errc := start(t, b)
	return &flightRig{src: src, sink: sink, log: log, b: b, out: out, errc: errc}
}

func (r *flightRig) publish(t *testing.T, bodies ...string) {
	t.Helper()
	for _, body := range bodies {
		publish(t, r.src, "t", []byte(body))
	}
}

// (a) To a Sender sink the route sends the next batch while an earlier
// one is unconfirmed, as long as fewer than MaxBatch messages are, and
// never has more than MaxBatch unconfirmed.
func TestFlightBoundedByMaxBatch(t *testing.T) {
	noLeak(t)
	const maxBatch = 4
	r := newFlightRig(t, Options{MaxBatch: maxBatch}, RouteConfig{}, nil)

	// Two messages, one after the other: the second is sent while the
	// first is still unconfirmed.
	r.publish(t, "00")
	r.sink.waitSends(t, 1)
	r.publish(t, "01")
	r.sink.waitSends(t, 2)
	if got := r.sink.unresolved(); got != 2 {
		t.Fatalf("%d messages unconfirmed, want 2 (both sends outstanding)", got)
	}

	// Ten more: the route fills the flight to MaxBatch and then waits.
	const n = 12
	for i := 2; i < n; i++ {
		r.publish(t, fmt.Sprintf("%02d", i))
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.sink.unresolved() < maxBatch {
		if time.Now().After(deadline) {
			t.Fatalf("only %d messages in flight after 5s, want %d", r.sink.unresolved(), maxBatch)
		}
		time.Sleep(time.Millisecond)
	}
	r.sink.noMoreSends(t, len(r.sink.calls()))

	// Confirm the oldest batch whenever one is open, until all arrived.
	resolved := 0
	for resolved < n {
		calls := r.sink.calls()
		progressed := false
		for _, c := range calls {
			if !isDone(c.pending) {
				c.pending.Resolve(nil)
				resolved += len(c.bodies)
				progressed = true
				break
			}
		}
		if !progressed {
			r.sink.waitSends(t, len(calls)+1)
		}
	}
	for i := range n {
		if m := receive(t, r.out); string(m.Body) != fmt.Sprintf("%02d", i) {
			t.Fatalf("message %d at the sink: %q, out of order", i, m.Body)
		}
	}
	nothingMore(t, r.out)
	waitStats(t, r.b, 0, func(s RouteStats) bool { return s.Forwarded == n })
	r.sink.mu.Lock()
	most := r.sink.maxFlight
	r.sink.mu.Unlock()
	if most > maxBatch {
		t.Errorf("%d messages were unconfirmed at once, over MaxBatch %d", most, maxBatch)
	}
	var sent []string
	for _, c := range r.sink.calls() {
		if len(c.bodies) > maxBatch {
			t.Errorf("a Send of %d messages, over MaxBatch %d", len(c.bodies), maxBatch)
		}
		sent = append(sent, c.bodies...)
	}
	if len(sent) != n {
		t.Errorf("Sends carried %d messages, want %d: %q", len(sent), n, sent)
	}
}

// MaxBatch 1 waits for each confirmation before taking the next message.
func TestFlightMaxBatchOneWaits(t *testing.T) {
	noLeak(t)
	r := newFlightRig(t, Options{MaxBatch: 1}, RouteConfig{}, nil)
	r.publish(t, "a", "b")
	r.sink.waitSends(t, 1)
	r.sink.noMoreSends(t, 1)
	r.sink.call(0).pending.Resolve(nil)
	r.sink.waitSends(t, 2)
	r.sink.call(1).pending.Resolve(nil)
	if ev := r.log.waitN(t, 2); !slices.Equal(ev, []string{"ack a", "ack b"}) {
		t.Errorf("settlements %q", ev)
	}
}

// (b) A delivery is acked only once its batch is confirmed, and in the
// source's order even when later batches are confirmed first.
func TestFlightAcksInSourceOrder(t *testing.T) {
	noLeak(t)
	r := newFlightRig(t, Options{}, RouteConfig{}, nil)
	for i, body := range []string{"a", "b", "c"} {
		r.publish(t, body)
		r.sink.waitSends(t, i+1)
	}
	// The sink has all three, none confirmed: nothing may be acked yet.
	for _, want := range []string{"a", "b", "c"} {
		if m := receive(t, r.out); string(m.Body) != want {
			t.Fatalf("sink got %q, want %q", m.Body, want)
		}
	}
	r.sink.call(2).pending.Resolve(nil)
	r.sink.call(1).pending.Resolve(nil)
	time.Sleep(50 * time.Millisecond)
	if ev := r.log.snapshot(); len(ev) != 0 {
		t.Fatalf("settled %q before the first batch was confirmed", ev)
	}
	r.sink.call(0).pending.Resolve(nil)
	if ev := r.log.waitN(t, 3); !slices.Equal(ev, []string{"ack a", "ack b", "ack c"}) {
		t.Errorf("settlements %q, want a, b, c acked in order", ev)
	}
	if s := waitStats(t, r.b, 0, func(s RouteStats) bool { return s.Forwarded == 3 }); s.DroppedTotal() != 0 || s.Retried != 0 {
		t.Errorf("stats %+v", s)
	}
}

// (c) A Pending that resolves with an error settles as Publish's error
// would: a counted loss at-most-once, a redelivery at-least-once.
func TestFlightPendingError(t *testing.T) {
	nacked := errors.New("broker nacked the message")
	t.Run("at-most-once", func(t *testing.T) {
		noLeak(t)
		r := newFlightRig(t, Options{}, RouteConfig{Delivery: AtMostOnce}, nil)
		r.publish(t, "lost")
		r.sink.waitSends(t, 1)
		r.publish(t, "kept")
		r.sink.waitSends(t, 2)
		r.sink.call(0).pending.Resolve(nacked)
		r.sink.call(1).pending.Resolve(nil)
		if ev := r.log.waitN(t, 2); !slices.Equal(ev, []string{"ack lost", "ack kept"}) {
			t.Errorf("settlements %q, want both acked", ev)
		}
		s := waitStats(t, r.b, 0, func(s RouteStats) bool { return s.Forwarded == 1 })
		if s.Dropped["sink_error"] != 1 || s.Retried != 0 || s.Received != 2 {
			t.Errorf("stats %+v, want 1 forwarded and 1 sink_error", s)
		}
		r.sink.noMoreSends(t, 2) // no redelivery
	})
	t.Run("at-least-once", func(t *testing.T) {
		noLeak(t)
		r := newFlightRig(t, Options{RetryMin: time.Millisecond, RetryMax: 4 * time.Millisecond},
			RouteConfig{Delivery: AtLeastOnce}, nil)
		r.publish(t, "x")
		r.sink.waitSends(t, 1)
		r.sink.call(0).pending.Resolve(nacked)
		// Handed back, redelivered by the source, sent again.
		r.sink.waitSends(t, 2)
		if got := r.sink.call(1).bodies; !slices.Equal(got, []string{"x"}) {
			t.Fatalf("second Send %q, want the redelivered x", got)
		}
		if ev := r.log.snapshot(); !slices.Equal(ev, []string{"nack x"}) {
			t.Fatalf("settlements before the retry was confirmed: %q, want [nack x]", ev)
		}
		r.sink.call(1).pending.Resolve(nil)
		if ev := r.log.waitN(t, 2); !slices.Equal(ev, []string{"nack x", "ack x"}) {
			t.Errorf("settlements %q", ev)
		}
		s := waitStats(t, r.b, 0, func(s RouteStats) bool { return s.Forwarded == 1 })
		if s.Retried != 1 || s.Received != 2 || s.DroppedTotal() != 0 {
			t.Errorf("stats %+v, want 1 retried, 1 forwarded, none dropped", s)
		}
	})
}

// (d) A Send that fails at once settles its batch like a failed Publish,
// and a closed sink ends the route.
func TestFlightSendFailsAtOnce(t *testing.T) {
	t.Run("not connected, at-least-once", func(t *testing.T) {
		noLeak(t)
		r := newFlightRig(t, Options{RetryMin: time.Millisecond, RetryMax: 4 * time.Millisecond},
			RouteConfig{Delivery: AtLeastOnce}, func(s *sender) {
				s.sendErr = func(call int) error {
					if call == 0 {
						return fmt.Errorf("sink: %w", transport.ErrNotConnected)
					}
					return nil
				}
			})
		r.publish(t, "x")
		r.sink.waitSends(t, 2)
		r.sink.call(1).pending.Resolve(nil)
		if ev := r.log.waitN(t, 2); !slices.Equal(ev, []string{"nack x", "ack x"}) {
			t.Errorf("settlements %q, want x handed back then acked", ev)
		}
		if m := receive(t, r.out); string(m.Body) != "x" {
			t.Errorf("sink got %q", m.Body)
		}
		nothingMore(t, r.out)
		s := waitStats(t, r.b, 0, func(s RouteStats) bool { return s.Forwarded == 1 })
		if s.Retried != 1 || s.DroppedTotal() != 0 {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("retry pause does not hold back earlier batches", func(t *testing.T) {
		noLeak(t)
		r := newFlightRig(t, Options{RetryMin: time.Minute},
			RouteConfig{Delivery: AtLeastOnce}, func(s *sender) {
				s.sendErr = func(call int) error {
					if call == 1 {
						return fmt.Errorf("sink: %w", transport.ErrNotConnected)
					}
					return nil
				}
			})
		r.publish(t, "a")
		r.sink.waitSends(t, 1)
		r.publish(t, "b")
		r.sink.waitSends(t, 2)
		// b's failure pauses the route for a minute, but a was sent
		// before it and is acked as soon as it is confirmed.
		r.sink.call(0).pending.Resolve(nil)
		if ev := r.log.waitN(t, 2); !slices.Equal(ev, []string{"ack a", "nack b"}) {
			t.Errorf("settlements %q, want a acked, then b handed back", ev)
		}
	})
	t.Run("closed", func(t *testing.T) {
		noLeak(t)
		r := newFlightRig(t, Options{}, RouteConfig{}, func(s *sender) {
			s.sendErr = func(call int) error {
				if call == 1 {
					return fmt.Errorf("sink: %w", transport.ErrClosed)
				}
				return nil
			}
		})
		r.publish(t, "a")
		r.sink.waitSends(t, 1)
		r.publish(t, "b")
		r.sink.waitSends(t, 2)
		// The route stops on the closed sink, but what it had in
		// flight is still settled by its outcome.
		r.sink.call(0).pending.Resolve(nil)
		select {
		case err := <-r.errc:
			if !errors.Is(err, ErrSinkClosed) {
				t.Errorf("Run: %v, want ErrSinkClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run went on with a closed sink")
		}
		// In source order: b's failure waited for a's confirmation.
		if ev := r.log.snapshot(); !slices.Equal(ev, []string{"ack a", "nack b"}) {
			t.Errorf("settlements %q, want a acked, then b handed back", ev)
		}
	})
}

// (e) Close settles what is in flight: a batch confirmed within Close's
// ctx is acked, one that is not is handed back; nothing leaks.
func TestFlightCloseSettlesInFlight(t *testing.T) {
	t.Run("confirmed in time", func(t *testing.T) {
		noLeak(t)
		r := newFlightRig(t, Options{}, RouteConfig{Delivery: AtLeastOnce}, nil)
		r.publish(t, "a")
		r.sink.waitSends(t, 1)
		r.publish(t, "b")
		r.sink.waitSends(t, 2)
		closed := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			closed <- r.b.Close(ctx)
		}()
		time.Sleep(20 * time.Millisecond)
		select {
		case err := <-closed:
			t.Fatalf("Close returned (%v) with two batches unconfirmed", err)
		default:
		}
		r.sink.call(1).pending.Resolve(nil)
		r.sink.call(0).pending.Resolve(nil)
		if err := <-closed; err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-r.errc; err != nil {
			t.Errorf("Run: %v", err)
		}
		if ev := r.log.snapshot(); !slices.Equal(ev, []string{"ack a", "ack b"}) {
			t.Errorf("settlements %q, want a and b acked", ev)
		}
		if s := r.b.Stats()[0]; s.Forwarded != 2 || s.Retried != 0 {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("not confirmed in time", func(t *testing.T) {
		noLeak(t)
		r := newFlightRig(t, Options{SettleTimeout: time.Second}, RouteConfig{Delivery: AtLeastOnce}, nil)
		r.publish(t, "a")
		r.sink.waitSends(t, 1)
		r.publish(t, "b")
		r.sink.waitSends(t, 2)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		go func() {
			time.Sleep(20 * time.Millisecond)
			r.sink.call(0).pending.Resolve(nil) // a is confirmed while Close waits; b never
		}()
		began := time.Now()
		if err := r.b.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close: %v, want the deadline", err)
		}
		if d := time.Since(began); d > 2*time.Second {
			t.Errorf("Close took %v", d)
		}
		select {
		case err := <-r.errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Run did not return after Close")
		}
		if ev := r.log.snapshot(); !slices.Equal(ev, []string{"ack a", "nack b"}) {
			t.Errorf("settlements %q, want a acked, b handed back", ev)
		}
		if s := r.b.Stats()[0]; s.Forwarded != 1 || s.Retried != 1 || s.DroppedTotal() != 0 {
			t.Errorf("stats %+v, want 1 forwarded and 1 handed back", s)
		}
	})
}

// (f) A Sender sink refusing a batch for one bad message (through its
// Pending, or at once from Send) drops only that message; the rest of its
// batch goes through, in order.
func TestFlightRefusedMessageDropsAlone(t *testing.T) {
	t.Run("pending", func(t *testing.T) { testFlightRefused(t, false) })
	t.Run("send", func(t *testing.T) { testFlightRefused(t, true) })
}

func testFlightRefused(t *testing.T, atSend bool) {
	noLeak(t)
	r := newFlightRig(t, Options{}, RouteConfig{}, func(s *sender) {
		s.open, s.holding = make(chan struct{}), make(chan struct{})
		s.refuse = func(m *transport.Message) bool { return string(m.Body) == "bad" }
		s.refuseAtSend = atSend
	})
	// The first Send is held, so the next three wait and form one batch.
	r.publish(t, "first")
	select {
	case <-r.sink.holding:
	case <-time.After(5 * time.Second):
		t.Fatal("no Send after 5s")
	}
	deadline := time.Now().Add(5 * time.Second)
	r.publish(t, "a", "bad", "b")
	for len(r.src.ch) != 3 {
		if time.Now().After(deadline) {
			close(r.sink.open)
			t.Fatalf("%d messages waiting at the route, want 3", len(r.src.ch))
		}
		time.Sleep(time.Millisecond)
	}
	close(r.sink.open)
	r.sink.waitSends(t, 2)
	if got := r.sink.call(1).bodies; !slices.Equal(got, []string{"a", "bad", "b"}) {
		t.Fatalf("second Send %q, want the batch a, bad, b", got)
	}
	want := []string{"first", "a", "b"}
	wantEvents := []string{"ack first", "ack a", "nack bad", "ack b"}
	if atSend {
		// Refused before anything was sent: the three are sent again
		// one by one at once, ahead of what comes next (c).
		r.sink.waitSends(t, 5)
		r.publish(t, "c")
		r.sink.waitSends(t, 6)
		var sent [][]string
		for _, c := range r.sink.calls()[2:] {
			sent = append(sent, c.bodies)
		}
		if fmt.Sprint(sent) != fmt.Sprint([][]string{{"a"}, {"bad"}, {"b"}, {"c"}}) {
			t.Errorf("Sends after the refusal %q, want a, bad, b, c one by one", sent)
		}
		want = append(want, "c")
		wantEvents = append(wantEvents, "ack c")
	}
	for _, c := range r.sink.calls() {
		if c.pending != nil {
			c.pending.Resolve(nil) // no-op for the refused ones
		}
	}
	var got []string
	for range want {
		got = append(got, string(receive(t, r.out).Body))
	}
	if !slices.Equal(got, want) {
		t.Errorf("sink got %q, want %q", got, want)
	}
	nothingMore(t, r.out)
	s := waitStats(t, r.b, 0, func(s RouteStats) bool { return s.Forwarded+s.DroppedTotal() == uint64(len(want)+1) })
	if s.Dropped["sink_rejected"] != 1 || s.Forwarded != uint64(len(want)) {
		t.Errorf("stats %+v, want %d forwarded and 1 sink_rejected", s, len(want))
	}
	if ev := r.log.waitN(t, len(wantEvents)); !slices.Equal(ev, wantEvents) {
		t.Errorf("settlements %q, want %q", ev, wantEvents)
	}
}
