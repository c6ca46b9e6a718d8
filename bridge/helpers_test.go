package bridge

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/transport"
	"github.com/gofedmsg/fedmsg/transport/memory"
)

func newMemory(t testing.TB) *memory.Transport {
	t.Helper()
	m, err := memory.New(memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

// limited reports fewer capabilities than the transport it wraps, like a
// ZeroMQ source (no redelivery) or a sink without confirms.
type limited struct {
	transport.Transport
	caps transport.Capabilities
}

func (l limited) Capabilities() transport.Capabilities { return l.caps }

// prefixOnly ignores glob patterns on Subscribe, the way a ZeroMQ SUB
// socket filters by prefix only, so the bridge's own filter is exercised.
type prefixOnly struct{ transport.Transport }

func (p prefixOnly) Subscribe(ctx context.Context, _ ...string) (<-chan *transport.Delivery, error) {
	return p.Transport.Subscribe(ctx)
}

// flaky fails the first n publishes with transport.ErrNotConnected (a
// broker that is down), then passes publishes through.
type flaky struct {
	transport.Transport
	failLeft atomic.Int64
	attempts atomic.Int64
}

func (f *flaky) Publish(ctx context.Context, msgs ...*transport.Message) error {
	f.attempts.Add(1)
	if f.failLeft.Add(-1) >= 0 {
		return transport.ErrNotConnected
	}
	return f.Transport.Publish(ctx, msgs...)
}

// stuck never confirms: Publish waits until its ctx ends.
type stuck struct {
	transport.Transport
	entered chan struct{}
	once    sync.Once
}

func (s *stuck) Publish(ctx context.Context, _ ...*transport.Message) error {
	s.once.Do(func() { close(s.entered) })
	<-ctx.Done()
	return ctx.Err()
}

// start runs b in the background until the test ends, waits until every
// route is subscribed, and returns Run's result channel.
func start(t testing.TB, b *Bridge) <-chan error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- b.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	select {
	case <-b.Ready():
	case err := <-errc:
		t.Fatalf("Run returned before being ready: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("bridge not ready after 5s")
	}
	return errc
}

// subscribe returns the sink's deliveries, acking each, as a consumer of
// the destination would.
func subscribe(t *testing.T, tr transport.Transport, patterns ...string) <-chan *transport.Message {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := tr.Subscribe(ctx, patterns...)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan *transport.Message, 1024)
	go func() {
		defer close(out)
		for d := range ch {
			_ = d.Ack(context.Background())
			out <- d.Message
		}
	}()
	return out
}

func publish(t *testing.T, tr transport.Transport, topic string, body []byte) {
	t.Helper()
	if err := tr.Publish(context.Background(), &transport.Message{Topic: topic, Body: body}); err != nil {
		t.Fatal(err)
	}
}

func receive(t *testing.T, ch <-chan *transport.Message) *transport.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("sink subscription ended")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message at the sink after 5s")
		return nil
	}
}

// nothingMore checks that ch stays empty: after the bridge has counted
// every message as handled, anything still to come would already be there.
func nothingMore(t *testing.T, ch <-chan *transport.Message) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("unexpected message at the sink: %q %q", m.Topic, m.Body)
	case <-time.After(50 * time.Millisecond):
	}
}

// waitStats polls the route's counters until cond holds.
func waitStats(t *testing.T, b *Bridge, route int, cond func(RouteStats) bool) RouteStats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := b.Stats()[route]
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("counters never reached the expected state: %+v", s)
		}
		time.Sleep(time.Millisecond)
	}
}

// noLeak fails when goroutines started during the test outlive it.
func noLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutines leaked: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
}
