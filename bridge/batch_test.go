package bridge

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/transport"
)

// gated holds its first Publish until open is closed, so that the source
// piles up deliveries and the next batch is a big one; it records the
// size of every Publish.
type gated struct {
	transport.Transport
	open   chan struct{}
	refuse func(*transport.Message) bool // refuses a whole batch holding such a message

	mu    sync.Mutex
	sizes []int
}

func newGated(tr transport.Transport) *gated {
	return &gated{Transport: tr, open: make(chan struct{})}
}

func (g *gated) Publish(ctx context.Context, msgs ...*transport.Message) error {
	g.mu.Lock()
	first := len(g.sizes) == 0
	g.sizes = append(g.sizes, len(msgs))
	g.mu.Unlock()
	if first {
		select {
		case <-g.open:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if g.refuse != nil && slices.ContainsFunc(msgs, g.refuse) {
		return fmt.Errorf("%w: refused", transport.ErrBadMessage)
	}
	return g.Transport.Publish(ctx, msgs...)
}

func (g *gated) publishSizes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.sizes)
}

// queued hands the bridge its deliveries through a buffered channel, as
// the ZeroMQ and STOMP transports do, so that what piled up while the
// route was busy is all there when it next takes a batch.
type queued struct {
	transport.Transport
	ch chan *transport.Delivery
}

func (q *queued) Subscribe(ctx context.Context, patterns ...string) (<-chan *transport.Delivery, error) {
	in, err := q.Transport.Subscribe(ctx, patterns...)
	if err != nil {
		return nil, err
	}
	q.ch = make(chan *transport.Delivery, 1024)
	go func() {
		defer close(q.ch)
		for d := range in {
			q.ch <- d
		}
	}()
	return q.ch, nil
}

// gatedRoute runs one route from a queued memory source to a gated memory
// sink. publishWaiting publishes the first body, which the gated sink
// holds, then the others, and returns once they all wait in the route's
// queue.
func gatedRoute(t *testing.T, opts Options, route RouteConfig) (publishWaiting func(bodies ...[]byte), sink *gated, b *Bridge, out <-chan *transport.Message) {
	t.Helper()
	src, dst := &queued{Transport: newMemory(t)}, newMemory(t)
	sink = newGated(dst)
	route.Name, route.From, route.To = "r", "src", "dst"
	b, err := New([]RouteConfig{route}, map[string]transport.Transport{"src": src, "dst": sink}, opts)
	if err != nil {
		t.Fatal(err)
	}
	start(t, b)
	publishWaiting = func(bodies ...[]byte) {
		t.Helper()
		waitFor := func(what string, cond func() bool) {
			t.Helper()
			deadline := time.Now().Add(5 * time.Second)
			for !cond() {
				if time.Now().After(deadline) {
					close(sink.open)
					t.Fatalf("%s: not after 5s", what)
				}
				time.Sleep(time.Millisecond)
			}
		}
		publish(t, src, "t", bodies[0])
		waitFor("the first message held at the sink", func() bool { return len(sink.publishSizes()) == 1 })
		for _, body := range bodies[1:] {
			publish(t, src, "t", body)
		}
		waitFor(fmt.Sprintf("%d messages queued at the route", len(bodies)-1), func() bool { return len(src.ch) == len(bodies)-1 })
	}
	return publishWaiting, sink, b, subscribe(t, dst)
}

func bodies(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, x := range s {
		out[i] = []byte(x)
	}
	return out
}

// Under load a route publishes what has piled up in one batch, bounded by
// MaxBatch, and every message still arrives once and in order.
func TestBatchesKeepOrderWithinMaxBatch(t *testing.T) {
	noLeak(t)
	publishWaiting, sink, b, out := gatedRoute(t, Options{MaxBatch: 16}, RouteConfig{})
	const n = 100
	var all [][]byte
	for i := range n {
		all = append(all, fmt.Appendf(nil, "%03d", i))
	}
	publishWaiting(all...)
	close(sink.open)
	for i := range n {
		if m := receive(t, out); string(m.Body) != fmt.Sprintf("%03d", i) {
			t.Fatalf("message %d: got %q, out of order", i, m.Body)
		}
	}
	nothingMore(t, out)
	if s := waitStats(t, b, 0, func(s RouteStats) bool { return s.Forwarded == n }); s.DroppedTotal() != 0 {
		t.Errorf("stats %+v", s)
	}
	sizes := sink.publishSizes()
	if slices.Max(sizes) > 16 {
		t.Errorf("a publish of %d messages, over MaxBatch 16: %v", slices.Max(sizes), sizes)
	}
	// 1 held at the gate, then the 99 waiting in full batches.
	if want := []int{1, 16, 16, 16, 16, 16, 16, 3}; !slices.Equal(sizes, want) {
		t.Errorf("publish sizes %v, want %v", sizes, want)
	}
}

// A message the sink refuses drops alone; the rest of its batch goes
// through.
func TestRefusedMessageDropsAloneFromItsBatch(t *testing.T) {
	noLeak(t)
	publishWaiting, sink, b, out := gatedRoute(t, Options{}, RouteConfig{})
	sink.refuse = func(m *transport.Message) bool { return string(m.Body) == "bad" }
	publishWaiting(bodies("first", "a", "bad", "b")...)
	close(sink.open)
	var got []string
	for range 3 {
		got = append(got, string(receive(t, out).Body))
	}
	if !slices.Equal(got, []string{"first", "a", "b"}) {
		t.Errorf("sink got %q, want first, a, b", got)
	}
	nothingMore(t, out)
	s := waitStats(t, b, 0, func(s RouteStats) bool { return s.Forwarded+s.DroppedTotal() == 4 })
	if s.Dropped["sink_rejected"] != 1 || s.Forwarded != 3 {
		t.Errorf("stats %+v, want 3 forwarded and 1 sink_rejected", s)
	}
	// The batch of three, refused whole, then each on its own.
	if sizes := sink.publishSizes(); !slices.Equal(sizes, []int{1, 3, 1, 1, 1}) {
		t.Errorf("publish sizes %v, want [1 3 1 1 1]", sizes)
	}
}

// Two copies of a msg_id in the same batch: the second is a duplicate.
func TestDuplicateWithinOneBatch(t *testing.T) {
	noLeak(t)
	publishWaiting, sink, b, out := gatedRoute(t, Options{}, RouteConfig{})
	publishWaiting(bodies(`{"msg_id":"first"}`, `{"msg_id":"x"}`, `{"msg_id":"y"}`, `{"msg_id":"x"}`)...)
	close(sink.open)
	for _, want := range []string{"first", "x", "y"} {
		if m := receive(t, out); string(m.Body) != fmt.Sprintf(`{"msg_id":%q}`, want) {
			t.Fatalf("got %s, want msg_id %s", m.Body, want)
		}
	}
	nothingMore(t, out)
	s := waitStats(t, b, 0, func(s RouteStats) bool { return s.Received == 4 && s.Forwarded == 3 })
	if s.Dropped["duplicate"] != 1 {
		t.Errorf("stats %+v, want 1 duplicate", s)
	}
	if sizes := sink.publishSizes(); !slices.Equal(sizes, []int{1, 2}) {
		t.Errorf("publish sizes %v, want [1 2]", sizes)
	}
}
