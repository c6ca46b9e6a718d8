package stomp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
	"github.com/gofedmsg/fedmsg/internal/brokertest"
	"github.com/gofedmsg/fedmsg/transport"
)

// events records connection events from the transport's hooks.
type events struct {
	mu        sync.Mutex
	connected []string
	lost      []error
	lostAt    []time.Time
	changed   chan struct{}
}

func newEvents() *events { return &events{changed: make(chan struct{}, 100)} }

func (e *events) hooks() hooks {
	return hooks{
		connected: func(addr string, _ flavor) {
			e.mu.Lock()
			e.connected = append(e.connected, addr)
			e.mu.Unlock()
			e.changed <- struct{}{}
		},
		lost: func(_ string, err error) {
			e.mu.Lock()
			e.lost = append(e.lost, err)
			e.lostAt = append(e.lostAt, time.Now())
			e.mu.Unlock()
			e.changed <- struct{}{}
		},
	}
}

// await waits until cond holds (checked under the lock after each event).
func (e *events) await(t *testing.T, within time.Duration, what string, cond func(*events) bool) {
	t.Helper()
	deadline := time.After(within)
	for {
		e.mu.Lock()
		ok := cond(e)
		e.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-e.changed:
		case <-deadline:
			t.Fatalf("waiting for %s: not within %v", what, within)
		}
	}
}

func newHooked(t *testing.T, o Options, e *events) *Transport {
	t.Helper()
	tr, err := newTransport(o, e.hooks())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { closeT(t, tr) })
	return tr
}

// roundTrip publishes one message on topic and expects it on ch.
func roundTrip(t *testing.T, tr *Transport, ch <-chan *transport.Delivery, topic string, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	body := fmt.Sprintf(`{"t":%d}`, time.Now().UnixNano())
	if err := tr.Publish(ctx, &transport.Message{Topic: topic, Body: []byte(body)}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	for {
		select {
		case d, ok := <-ch:
			if !ok {
				t.Fatal("subscription closed")
			}
			if string(d.Message.Body) == body {
				return
			}
		case <-ctx.Done():
			t.Fatalf("message on %s did not arrive within %v", topic, within)
		}
	}
}

func uniqueTopic(name string) string {
	return fmt.Sprintf("org.fedoraproject.test.stomp.%s.%d", name, time.Now().UnixNano())
}

// A dead first address: the client moves on to the next one.
func TestFailoverDeadFirstAddress(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitSTOMP)
	e := newEvents()
	o := testOptions(brokertest.RabbitSTOMP)
	o.Addrs = []string{"127.0.0.1:1", brokertest.RabbitSTOMP.Addr}
	tr := newHooked(t, o, e)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	topic := uniqueTopic("failover")
	ch, err := tr.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, tr, ch, topic, 10*time.Second)
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.connected) == 0 || e.connected[0] != brokertest.RabbitSTOMP.Addr {
		t.Errorf("connected to %v, want %s", e.connected, brokertest.RabbitSTOMP.Addr)
	}
}

// A frozen broker (SIGSTOP: connections open, nothing answers) is left
// within two heart-beat intervals; after Thaw the client comes back,
// re-subscribes and delivers.
func TestFrozenBrokerDetected(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitSTOMP)
	brokertest.Claim(t)
	e := newEvents()
	o := testOptions(brokertest.RabbitSTOMP)
	o.HeartBeat = time.Second
	tr := newHooked(t, o, e)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	topic := uniqueTopic("frozen")
	ch, err := tr.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, tr, ch, topic, 10*time.Second)

	brokertest.Freeze(t, brokertest.RabbitSTOMP)
	frozen := time.Now()
	e.await(t, 10*o.HeartBeat, "the connection to the frozen broker to be left", func(e *events) bool { return len(e.lost) > 0 })
	e.mu.Lock()
	took, cause := e.lostAt[0].Sub(frozen), e.lost[0]
	e.mu.Unlock()
	t.Logf("frozen broker left after %v: %v", took.Round(time.Millisecond), cause)
	if !errors.Is(cause, ErrHeartBeat) {
		t.Errorf("left for %v, want ErrHeartBeat", cause)
	}
	// Two intervals, plus a little for the goroutines to be scheduled.
	if limit := 2*o.HeartBeat + 200*time.Millisecond; took > limit {
		t.Errorf("detected after %v, want within two heart-beat intervals (%v)", took, limit)
	}
	brokertest.Thaw(t, brokertest.RabbitSTOMP)
	roundTrip(t, tr, ch, topic, 30*time.Second)
}

// An ERROR frame (here: a SEND to a destination RabbitMQ refuses) costs
// the connection, not the transport: it reconnects, re-subscribes and
// goes on.
func TestErrorFrameReconnects(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitSTOMP)
	e := newEvents()
	tr := newHooked(t, testOptions(brokertest.RabbitSTOMP), e)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	topic := uniqueTopic("error")
	ch, err := tr.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, tr, ch, topic, 10*time.Second)
	c := tr.current()
	if c == nil {
		t.Fatal("no connection after a round trip")
	}
	bad := []writeItem{{head: encodeHead(frame.SEND, frame.Destination, "/nonsense/x")}}
	if err := c.enqueue(ctx, bad); err != nil {
		t.Fatal(err)
	}
	e.await(t, 10*time.Second, "the ERROR frame to end the connection", func(e *events) bool { return len(e.lost) > 0 })
	e.mu.Lock()
	cause := e.lost[0]
	e.mu.Unlock()
	if !errors.Is(cause, ErrBroker) || !strings.Contains(cause.Error(), "nonsense") {
		t.Errorf("connection ended by %v, want the broker's ERROR about /nonsense/x", cause)
	}
	roundTrip(t, tr, ch, topic, 10*time.Second)
}

func TestOptionsValidation(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{}, "Addrs (stomp_uri) is empty"},
		{Options{Addrs: []string{"localhost"}}, "Addrs[0]"},
		{Options{Addrs: []string{"a:1", ":61613"}}, "Addrs[1]"},
		{Options{Addrs: []string{"a:99999"}}, "Addrs[0]"},
		{Options{Addrs: []string{"a:1"}, HeartBeat: -time.Second}, "HeartBeat (stomp_heartbeat)"},
		{Options{Addrs: []string{"a:1"}, HeartBeat: time.Microsecond}, "HeartBeat (stomp_heartbeat)"},
		{Options{Addrs: []string{"a:1"}, ReconnectDelay: -1}, "ReconnectDelay (stomp_delay)"},
		{Options{Addrs: []string{"a:1"}, MaxReconnectDelay: -1}, "MaxReconnectDelay"},
		{Options{Addrs: []string{"a:1"}, ReconnectDelay: time.Second, MaxReconnectDelay: time.Millisecond}, "MaxReconnectDelay"},
		{Options{Addrs: []string{"a:1"}, Login: "a\nb"}, "Login (stomp_user)"},
		{Options{Addrs: []string{"a:1"}, Passcode: "a\x00"}, "Passcode (stomp_pass)"},
		{Options{Addrs: []string{"a:1"}, Vhost: "\r"}, "Vhost"},
		{Options{Addrs: []string{"a:1"}, Queue: " /queue/x"}, "Queue (stomp_queue)"},
	} {
		_, err := New(c.o)
		if err == nil || !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an ErrInvalidOptions naming %q", c.o, err, c.want)
		}
	}
	tr, err := New(Options{Addrs: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
	closeT(t, tr)
}

// Publish with no broker reachable fails within its ctx, wrapping
// ErrNotConnected; New never blocks.
func TestPublishNotConnected(t *testing.T) {
	start := time.Now()
	tr := newT(t, Options{Addrs: []string{"127.0.0.1:1"}})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := tr.Publish(ctx, &transport.Message{Topic: "a.b", Body: []byte("{}")})
	if !errors.Is(err, transport.ErrNotConnected) {
		t.Errorf("Publish: %v, want ErrNotConnected", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v", took)
	}
	for _, m := range []*transport.Message{nil, {Topic: ""}, {Topic: "a/b"}} {
		if err := tr.Publish(context.Background(), m); !errors.Is(err, transport.ErrBadMessage) {
			t.Errorf("Publish(%+v) = %v, want ErrBadMessage", m, err)
		}
	}
}
