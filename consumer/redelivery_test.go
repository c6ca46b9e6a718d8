package consumer

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/transport"
	"github.com/gofedmsg/fedmsg/transport/memory"
)

// A handler that keeps failing on a transport that redelivers is not
// handed its message in a hot loop: each hand-back waits a pause that
// doubles, so in 1.2 s with pauses 100, 200, 400, 400 ms it runs about 5
// times (Nacked at once, the memory transport would hand it back
// thousands of times). Once it succeeds, the message is acked and not
// seen again.
func TestFailedMessagesComeBackPaced(t *testing.T) {
	mem, err := memory.New(memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close(context.Background())
	var calls atomic.Int32
	var healthy atomic.Bool
	h, err := New([]Consumer{{Name: "flaky", Topics: []string{"a."}, Handler: func(context.Context, *Message) error {
		calls.Add(1)
		if healthy.Load() {
			return nil
		}
		return errors.New("downstream is down")
	}}, {Name: "probe", Topics: []string{"probe"}, Handler: func(context.Context, *Message) error { return nil }}}, Options{RedeliveryDelay: 100 * time.Millisecond, MaxRedeliveryDelay: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runHub(t, h, mem)
	// Until the probe consumer has one, the subscription may not exist yet.
	for deadline := time.Now().Add(5 * time.Second); h.Stats()[1].Handled == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the hub never subscribed")
		}
		if err := mem.Publish(context.Background(), &transport.Message{Topic: "probe", Body: envelope("probe")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := mem.Publish(context.Background(), &transport.Message{Topic: "a.x", Body: envelope("a.x")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond)
	n := calls.Load()
	if n < 3 || n > 8 {
		t.Fatalf("the failing handler ran %d times in 1.2 s, want about 5 (paced hand-backs)", n)
	}
	healthy.Store(true)
	deadline := time.Now().Add(3 * time.Second)
	for h.Stats()[0].Handled == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the message was not handled once the handler recovered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	settledAt := calls.Load()
	time.Sleep(600 * time.Millisecond)
	if calls.Load() != settledAt {
		t.Errorf("the handler ran %d more times after the message was handled", calls.Load()-settledAt)
	}
}

// A message held for its pause goes back at once when the hub stops:
// shutdown does not wait out the pause, and nothing stays unsettled.
func TestHeldMessageHandedBackAtShutdown(t *testing.T) {
	boom := errors.New("boom")
	h, err := New([]Consumer{{Name: "fails", Topics: []string{"a."}, Handler: func(context.Context, *Message) error { return boom }}},
		Options{RedeliveryDelay: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	f := newFake()
	stop := runHub(t, h, f)
	f.push(t, "m", "a.x", envelope("a.x"))
	deadline := time.Now().Add(5 * time.Second)
	for h.Stats()[0].Failed == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the handler never ran")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(f.settled) != 0 {
		t.Fatal("the failed message was handed back before its pause")
	}
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Run took %v to return with a message held for a minute", took)
	}
	if s := f.next(t); s.ack || !errors.Is(s.cause, boom) {
		t.Errorf("held message settled as %+v, want a nack caused by boom", s)
	}
}
