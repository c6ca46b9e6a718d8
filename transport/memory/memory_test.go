package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/transport"
	"github.com/gofedmsg/fedmsg/transport/memory"
	"github.com/gofedmsg/fedmsg/transport/transporttest"
)

func newMemory(t testing.TB, o memory.Options) *memory.Transport {
	t.Helper()
	tr, err := memory.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tr
}

// The reference transport passes the whole suite; it has no broker, so
// only the broker fault tests are reported as not applicable.
func TestConformance(t *testing.T) {
	transporttest.Run(t, transporttest.Factory{
		New: func(t testing.TB) (transport.Transport, transport.Transport) {
			tr := newMemory(t, memory.Options{})
			return tr, tr
		},
	})
}

// A small buffer makes the suite run into flow control all the time.
func TestConformanceBufferOne(t *testing.T) {
	transporttest.Run(t, transporttest.Factory{
		New: func(t testing.TB) (transport.Transport, transport.Transport) {
			tr := newMemory(t, memory.Options{Buffer: 1})
			return tr, tr
		},
	})
}

func TestOptionsValidate(t *testing.T) {
	if _, err := memory.New(memory.Options{Buffer: -1}); err == nil {
		t.Error("negative buffer accepted")
	}
	if _, err := memory.New(memory.Options{WhenFull: 7}); err == nil {
		t.Error("unknown policy accepted")
	}
}

func msg(topic string) *transport.Message {
	return &transport.Message{Topic: topic, Body: []byte(`{}`)}
}

func TestFullQueueBlocksUntilRoomOrContext(t *testing.T) {
	tr := newMemory(t, memory.Options{Buffer: 2})
	ctx := context.Background()
	ch, err := tr.Subscribe(ctx, "a.")
	if err != nil {
		t.Fatal(err)
	}
	// The pump holds one message waiting for the consumer, the queue two.
	if err := tr.Publish(ctx, msg("a.1"), msg("a.2"), msg("a.3")); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := tr.Publish(short, msg("a.4")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the publish to wait for room until its ctx ends, got %v", err)
	}
	// Topics nobody subscribed to never wait.
	if err := tr.Publish(short, msg("b.1")); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		// ctx is expired by now, which Publish reports first
		t.Fatalf("expired ctx: got %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- tr.Publish(ctx, msg("a.5")) }()
	for _, want := range []string{"a.1", "a.2", "a.3", "a.5"} {
		d := <-ch
		if d.Message.Topic != want {
			t.Fatalf("got %s, want %s", d.Message.Topic, want)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("blocked publish: %v", err)
	}
}

func TestFullQueueRejects(t *testing.T) {
	tr := newMemory(t, memory.Options{Buffer: 1, WhenFull: memory.Reject})
	ctx := context.Background()
	if _, err := tr.Subscribe(ctx, ""); err != nil {
		t.Fatal(err)
	}
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		err = tr.Publish(ctx, msg("a"))
	}
	if !errors.Is(err, memory.ErrFull) {
		t.Fatalf("want ErrFull, got %v", err)
	}
}

func TestCloseReleasesBlockedPublisher(t *testing.T) {
	tr := newMemory(t, memory.Options{Buffer: 1})
	ctx := context.Background()
	if _, err := tr.Subscribe(ctx, ""); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		var err error
		for err == nil {
			err = tr.Publish(ctx, msg("a"))
		}
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let it fill the queue; either way Close must release it
	if err := tr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, transport.ErrClosed) {
			t.Fatalf("want ErrClosed, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("publisher still blocked after Close")
	}
}

func TestNackRequeuesAtHeadMarkedRedelivered(t *testing.T) {
	tr := newMemory(t, memory.Options{})
	ctx := context.Background()
	ch, err := tr.Subscribe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(ctx, msg("1"), msg("2")); err != nil {
		t.Fatal(err)
	}
	d := <-ch
	if d.Message.Headers["redelivered"] != "" {
		t.Fatal("a first delivery is not a redelivery")
	}
	if err := d.Nack(ctx, errors.New("later")); err != nil {
		t.Fatal(err)
	}
	// "2" may already be waiting in the pump; "1" comes right after it at the latest.
	var order []string
	for range 2 {
		d := <-ch
		order = append(order, d.Message.Topic)
		if d.Message.Topic == "1" && d.Message.Headers["redelivered"] != "true" {
			t.Error("redelivery not marked")
		}
		_ = d.Ack(ctx)
	}
	if len(order) != 2 || (order[0] != "1" && order[1] != "1") {
		t.Fatalf("got %v", order)
	}
}

func TestSettleAfterSubscriptionEnded(t *testing.T) {
	tr := newMemory(t, memory.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := tr.Subscribe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(context.Background(), msg("a")); err != nil {
		t.Fatal(err)
	}
	d := <-ch
	cancel()
	for range ch {
	}
	if err := d.Nack(context.Background(), errors.New("x")); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Nack after the subscription ended: want ErrClosed, got %v", err)
	}
}

func TestPublishCopiesMessage(t *testing.T) {
	tr := newMemory(t, memory.Options{})
	ctx := context.Background()
	ch1, _ := tr.Subscribe(ctx, "")
	ch2, _ := tr.Subscribe(ctx, "")
	m := &transport.Message{Topic: "t", Body: []byte(`{"a":1}`), Headers: map[string]string{"h": "v"}}
	if err := tr.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	m.Body[2] = 'X'
	m.Headers["h"] = "changed"
	d1, d2 := <-ch1, <-ch2
	d1.Message.Body[2] = 'Y'
	if string(d2.Message.Body) != `{"a":1}` || d2.Message.Headers["h"] != "v" {
		t.Fatalf("deliveries share memory with the publisher or each other: %s %v", d2.Message.Body, d2.Message.Headers)
	}
}
