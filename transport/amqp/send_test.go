package amqp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
	"github.com/gofedmsg/fedmsg/transport"
)

// sendBatches are the batches of a pipelined publishing test: sizes
// 1..20, bodies numbering the messages in send order.
func sendBatches(topic string, batches int) (out [][]*transport.Message, total int) {
	r := rand.New(rand.NewPCG(1, 2))
	for range batches {
		batch := make([]*transport.Message, 1+r.IntN(20))
		for i := range batch {
			batch[i] = &transport.Message{Topic: topic, Body: []byte(strconv.Itoa(total))}
			total++
		}
		out = append(out, batch)
	}
	return out, total
}

// waitAll waits for every Pending and fails the test on any error.
func waitAll(t *testing.T, ctx context.Context, pendings []*transport.Pending) {
	t.Helper()
	for i, p := range pendings {
		if err := p.Wait(ctx); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
}

// firstArrivals reads deliveries until each of the total messages has
// arrived once, then a little longer, and returns the messages in the order
// of their first arrival and how many times each arrived.
func firstArrivals(t *testing.T, ctx context.Context, deliveries <-chan amqp091.Delivery, total int) (order []int, times []int) {
	t.Helper()
	times = make([]int, total)
	linger := (<-chan time.Time)(nil)
	for {
		select {
		case d, ok := <-deliveries:
			if !ok {
				t.Fatalf("the consumer ended after %d distinct messages of %d", len(order), total)
			}
			n, err := strconv.Atoi(string(d.Body))
			if err != nil || n < 0 || n >= total {
				t.Fatalf("unexpected body %q", d.Body)
			}
			if times[n] == 0 {
				order = append(order, n)
			}
			times[n]++
			if len(order) == total && linger == nil {
				// Anything still on its way (a duplicate) is there by now.
				linger = time.After(200 * time.Millisecond)
			}
		case <-linger:
			return order, times
		case <-ctx.Done():
			t.Fatalf("%d distinct messages of %d arrived", len(order), total)
		}
	}
}

func checkSendOrder(t *testing.T, order []int) {
	t.Helper()
	for i, n := range order {
		if n != i {
			t.Fatalf("first arrival %d is message %d: out of send order", i, n)
		}
	}
}

// Many Sends without waiting: every Pending resolves nil and a consumer
// gets every message exactly once, in send order.
func TestSendPipelinedKeepsOrder(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQP)
	tr := newT(t, testOptions(t, plainURL))
	topic := uniqueTopic(t) + ".send"
	deliveries := rawConsumer(t, rawChannel(t), topic)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	batches, total := sendBatches(topic, 200)
	pendings := make([]*transport.Pending, 0, len(batches))
	for i, b := range batches {
		p, err := tr.Send(ctx, b...)
		if err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		pendings = append(pendings, p)
	}
	// Sends return before their confirms: had every Pending been
	// resolved by now, Send would be Publish under another name.
	unresolved := 0
	for _, p := range pendings {
		select {
		case <-p.Done():
		default:
			unresolved++
		}
	}
	t.Logf("%d of %d batches unconfirmed when the last Send returned", unresolved, len(pendings))
	waitAll(t, ctx, pendings)

	order, times := firstArrivals(t, ctx, deliveries, total)
	checkSendOrder(t, order)
	for n, k := range times {
		if k != 1 {
			t.Errorf("message %d arrived %d times, want once", n, k)
		}
	}
}

// The connection dies under pipelined Sends: every Pending still resolves
// nil, every message arrives at least once, and the first arrivals are in
// send order (what was unconfirmed is sent again before later batches).
func TestSendSurvivesConnectionCut(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQP)
	tr := newT(t, testOptions(t, plainURL))
	topic := uniqueTopic(t) + ".cut"
	deliveries := rawConsumer(t, rawChannel(t), topic)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	batches, total := sendBatches(topic, 200)
	pendings := make([]*transport.Pending, 0, len(batches))
	cut := false
	for i, b := range batches {
		p, err := tr.Send(ctx, b...)
		if err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		pendings = append(pendings, p)
		if cut || i < len(batches)/2 {
			continue
		}
		select {
		case <-p.Done():
			continue // confirmed already: cut where something is in flight
		default:
		}
		// Under amqp091-go, like a broker or network that goes away:
		// the socket closes with batches unconfirmed.
		tr.mu.Lock()
		s := tr.sess
		tr.mu.Unlock()
		if s == nil || s.wire == nil {
			t.Fatal("no session to cut")
		}
		_ = s.wire.Conn.Close()
		cut = true
		t.Logf("connection cut after Send %d of %d", i+1, len(batches))
	}
	if !cut {
		t.Fatal("every batch was confirmed at once: the cut never happened mid-flight")
	}
	waitAll(t, ctx, pendings)

	order, times := firstArrivals(t, ctx, deliveries, total)
	checkSendOrder(t, order)
	again := 0
	for _, k := range times {
		again += k - 1
	}
	t.Logf("%d messages arrived twice (sent again after the cut)", again)

	// The transport is usable afterwards, and a Publish follows every Send.
	if err := tr.Publish(ctx, &transport.Message{Topic: topic, Body: []byte(fmt.Sprint(total))}); err != nil {
		t.Fatalf("Publish after the cut: %v", err)
	}
	for {
		select {
		case d := <-deliveries:
			if string(d.Body) == fmt.Sprint(total) {
				return
			}
			// A late copy of a message sent again; first arrivals
			// were checked above.
		case <-ctx.Done():
			t.Fatal("nothing arrived after the cut")
		}
	}
}

// Close with Sends in flight waits for their confirms: every Pending
// resolves nil; a Send after Close fails with ErrClosed and no Pending.
func TestSendPendingsResolveOnClose(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQP)
	tr := newT(t, testOptions(t, plainURL))
	topic := uniqueTopic(t) + ".close"
	deliveries := rawConsumer(t, rawChannel(t), topic)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	batches, total := sendBatches(topic, 50)
	var pendings []*transport.Pending
	for i, b := range batches {
		p, err := tr.Send(ctx, b...)
		if err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		pendings = append(pendings, p)
	}
	if err := tr.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i, p := range pendings {
		select {
		case <-p.Done():
		default:
			t.Fatalf("batch %d unresolved after Close returned", i)
		}
		if err := p.Err(); err != nil {
			t.Errorf("batch %d: %v, want nil (Close drains confirms)", i, err)
		}
	}
	order, _ := firstArrivals(t, ctx, deliveries, total)
	checkSendOrder(t, order)
	p, err := tr.Send(ctx, &transport.Message{Topic: topic, Body: []byte("late")})
	if !errors.Is(err, transport.ErrClosed) || p != nil {
		t.Errorf("Send after Close = %v, %v; want no Pending and ErrClosed", p, err)
	}
}

// A broker that does not answer (frozen): the Pending resolves with the
// Send ctx's error when that ends, so a caller draining its Pendings (the
// bridge on Close) is never stuck behind a hung broker.
func TestSendPendingHonoursCtx(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQP)
	brokertest.Claim(t)
	tr := newT(t, testOptions(t, plainURL))
	topic := uniqueTopic(t) + ".frozen"
	wctx, wcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer wcancel()
	// Connected first, so that Send has a session to write on.
	if err := tr.Publish(wctx, &transport.Message{Topic: topic, Body: []byte("warm")}); err != nil {
		t.Fatal(err)
	}
	brokertest.Freeze(t, brokertest.RabbitAMQP)
	ctx, cancel := context.WithCancel(context.Background())
	p, err := tr.Send(ctx, &transport.Message{Topic: topic, Body: []byte("unconfirmed")})
	if err != nil {
		brokertest.Thaw(t, brokertest.RabbitAMQP)
		t.Fatalf("Send to a frozen broker: %v", err)
	}
	select {
	case <-p.Done():
		brokertest.Thaw(t, brokertest.RabbitAMQP)
		t.Fatalf("a frozen broker confirmed: %v", p.Err())
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	select {
	case <-p.Done():
	case <-time.After(2 * time.Second):
		brokertest.Thaw(t, brokertest.RabbitAMQP)
		t.Fatal("the Pending stayed open after its ctx ended")
	}
	brokertest.Thaw(t, brokertest.RabbitAMQP)
	if err := p.Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("Pending = %v, want context.Canceled", err)
	}
}
