package stomp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	gostomp "github.com/go-stomp/stomp/v3"
	"github.com/gofedmsg/fedmsg/internal/brokertest"
	"github.com/gofedmsg/fedmsg/transport"
)

// durableName is a fresh stomp_durable_name, so tests never resume each
// other's subscriptions.
func durableName(t testing.TB) string {
	return fmt.Sprintf("gofedmsg-durable-test-%08x", rand.Uint32())
}

func durableOptions(name string) Options {
	o := testOptions(brokertest.ActiveMQSTOMP)
	o.DurableName = name
	return o
}

func recv(t *testing.T, ch <-chan *transport.Delivery, within time.Duration, what string) *transport.Delivery {
	t.Helper()
	select {
	case d, ok := <-ch:
		if !ok {
			t.Fatalf("%s: subscription channel closed", what)
		}
		return d
	case <-time.After(within):
		t.Fatalf("%s: nothing within %v", what, within)
	}
	return nil
}

func publishOne(t *testing.T, tr transport.Transport, topic, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Publish(ctx, &transport.Message{Topic: topic, Body: []byte(body)}); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

// TestDurableKeepsMessagesWhileAway: what is published while no
// subscriber with the durable name exists arrives, all of it, in order
// and byte for byte, once one comes back, to each of two local
// subscriptions (which share the one durable subscription).
func TestDurableKeepsMessagesWhileAway(t *testing.T) {
	brokertest.Use(t, brokertest.ActiveMQSTOMP)
	name := durableName(t)
	prefix := fmt.Sprintf("gofedmsg.durtest.%08x", rand.Uint32())
	pats := []string{prefix + ".a.", prefix + ".b."} // fedmsg patterns: plain prefixes
	brokertest.CleanupActiveMQDurable(t, name, name)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	pub := newT(t, testOptions(brokertest.ActiveMQSTOMP))
	sub := newT(t, durableOptions(name))
	if c := sub.Capabilities(); !c.Redelivery || !c.Durable {
		t.Fatalf("Capabilities with DurableName = %+v, want Redelivery and Durable", c)
	}
	var chs []<-chan *transport.Delivery
	for _, p := range pats {
		ch, err := sub.Subscribe(ctx, p)
		if err != nil {
			t.Fatalf("Subscribe %q: %v", p, err)
		}
		chs = append(chs, ch)
	}
	for i, ch := range chs {
		topic := pats[i] + "first"
		publishOne(t, pub, topic, "first")
		d := recv(t, ch, 10*time.Second, "first message on "+pats[i])
		if d.Message.Topic != topic || string(d.Message.Body) != "first" {
			t.Fatalf("first delivery on %s: %q %q", pats[i], d.Message.Topic, d.Message.Body)
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
	closeT(t, sub)

	// Published with no subscriber connected: persistent (the publisher
	// always says so), so ActiveMQ stores them for the durable subscriptions.
	const n = 200
	want := [2][][]byte{}
	var msgs []*transport.Message
	for i := range n {
		k := i % 2
		body := fmt.Appendf(nil, `{"i":%d,"bin":"\u00e9\t%c"}`, i, 'a'+rune(i%26))
		want[k] = append(want[k], body)
		msgs = append(msgs, &transport.Message{Topic: fmt.Sprintf("%s.%c.m%d", prefix, 'a'+k, i), ID: fmt.Sprint("id-", i), Body: body})
	}
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	if err := pub.Publish(pctx, msgs...); err != nil {
		t.Fatalf("publish while away: %v", err)
	}

	sub2 := newT(t, durableOptions(name))
	chs = chs[:0]
	for _, p := range pats {
		ch, err := sub2.Subscribe(ctx, p)
		if err != nil {
			t.Fatalf("Subscribe %q again: %v", p, err)
		}
		chs = append(chs, ch)
	}
	// Both read at once: the subscriptions share one broker consumer,
	// which waits while either's buffer is full.
	var wg sync.WaitGroup
	for k, ch := range chs {
		wg.Go(func() {
			for i, w := range want[k] {
				var d *transport.Delivery
				select {
				case d = <-ch:
				case <-time.After(15 * time.Second):
				}
				if d == nil {
					t.Errorf("%s: message %d of %d not received after resuming", pats[k], i, len(want[k]))
					return
				}
				if !bytes.Equal(d.Message.Body, w) {
					t.Errorf("%s message %d: body %q, want %q (order or bytes changed)", pats[k], i, d.Message.Body, w)
					return
				}
				if err := d.Ack(ctx); err != nil {
					t.Errorf("Ack: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for k, ch := range chs {
		select {
		case d := <-ch:
			t.Fatalf("%s: unexpected extra delivery %q %q", pats[k], d.Message.Topic, d.Message.Body)
		case <-time.After(300 * time.Millisecond):
		}
	}
	closeT(t, sub2)

	// What the operator is told to do: remove the subscriptions; then
	// nothing is kept for the name any more.
	if err := brokertest.RemoveActiveMQDurable(brokertest.ActiveMQSTOMP.Addr, name, name); err != nil {
		t.Fatalf("removing the durable subscriptions: %v", err)
	}
	publishOne(t, pub, prefix+".a.after", "after removal")
	sub3 := newT(t, durableOptions(name))
	ch, err := sub3.Subscribe(ctx, pats[0])
	if err != nil {
		t.Fatalf("Subscribe after removal: %v", err)
	}
	select {
	case d := <-ch:
		t.Fatalf("after removing the durable subscription, got %q: it was kept", d.Message.Body)
	case <-time.After(time.Second):
	}
}

// TestDurableRedelivery: a transient Nack brings the message back, and so
// does losing the connection before the Ack.
func TestDurableRedelivery(t *testing.T) {
	brokertest.Use(t, brokertest.ActiveMQSTOMP)
	name := durableName(t)
	prefix := fmt.Sprintf("gofedmsg.durtest.%08x", rand.Uint32())
	brokertest.CleanupActiveMQDurable(t, name, name)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := newT(t, testOptions(brokertest.ActiveMQSTOMP))
	sub := newT(t, durableOptions(name))
	ch, err := sub.Subscribe(ctx, prefix+".")
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}

	publishOne(t, pub, prefix+".one", "one")
	d := recv(t, ch, 10*time.Second, "first delivery")
	if err := d.Nack(ctx, errors.New("sink down")); err != nil {
		t.Fatalf("Nack: %v", err)
	}
	d = recv(t, ch, 15*time.Second, "redelivery after a transient Nack")
	if string(d.Message.Body) != "one" {
		t.Fatalf("after Nack got %q, want the Nacked message again", d.Message.Body)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatalf("Ack of the redelivery: %v", err)
	}

	publishOne(t, pub, prefix+".two", "two")
	d = recv(t, ch, 10*time.Second, "second message")
	if string(d.Message.Body) != "two" {
		t.Fatalf("got %q, want two", d.Message.Body)
	}
	// The connection drops before the Ack (as a network failure would).
	c := sub.current()
	if c == nil {
		t.Fatal("no connection")
	}
	c.fail(errors.New("test: connection cut"))
	d = recv(t, ch, 15*time.Second, "redelivery on the next connection")
	if string(d.Message.Body) != "two" {
		t.Fatalf("after the connection dropped got %q, want the unacked message again", d.Message.Body)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatalf("Ack on the new connection: %v", err)
	}
	publishOne(t, pub, prefix+".three", "three")
	d = recv(t, ch, 10*time.Second, "third message")
	if string(d.Message.Body) != "three" {
		t.Fatalf("got %q, want three (acked messages must not come back)", d.Message.Body)
	}
	_ = d.Ack(ctx)
}

// TestDurableClientIDInUse: ActiveMQ refuses a second connection with the
// same client-id; the error says which, and the transport connects once
// the first one is gone.
func TestDurableClientIDInUse(t *testing.T) {
	brokertest.Use(t, brokertest.ActiveMQSTOMP)
	name := durableName(t)
	first := newT(t, durableOptions(name))
	deadline := time.Now().Add(10 * time.Second)
	for !first.Connected() {
		if time.Now().After(deadline) {
			t.Fatalf("first transport not connected: %v", first.LastError())
		}
		time.Sleep(20 * time.Millisecond)
	}
	second := newT(t, durableOptions(name))
	deadline = time.Now().Add(10 * time.Second)
	for {
		err := second.LastError()
		if err != nil {
			if !strings.Contains(err.Error(), "client-id") || !strings.Contains(err.Error(), name) || !errors.Is(err, ErrBroker) {
				t.Fatalf("second connection's error does not name the client-id %q: %v", name, err)
			}
			break
		}
		if second.Connected() {
			t.Fatal("ActiveMQ accepted a second connection with the same client-id")
		}
		if time.Now().After(deadline) {
			t.Fatal("second transport reported no error")
		}
		time.Sleep(20 * time.Millisecond)
	}
	closeT(t, first)
	deadline = time.Now().Add(15 * time.Second)
	for !second.Connected() {
		if time.Now().After(deadline) {
			t.Fatalf("second transport did not recover after the first closed: %v", second.LastError())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDurableRefusedOnRabbitMQ: RabbitMQ has no durable topic
// subscriptions; Subscribe fails naming the key and the alternative
// rather than quietly subscribing without durability.
func TestDurableRefusedOnRabbitMQ(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitSTOMP)
	o := testOptions(brokertest.RabbitSTOMP)
	o.DurableName = durableName(t)
	tr := newT(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ch, err := tr.Subscribe(ctx, "org.example.")
	if err == nil {
		t.Fatalf("Subscribe with DurableName on RabbitMQ succeeded (channel %v)", ch)
	}
	if !errors.Is(err, ErrDurableUnsupported) || !strings.Contains(err.Error(), "stomp_durable_name") || !strings.Contains(err.Error(), "stomp_queue") {
		t.Fatalf("error should wrap ErrDurableUnsupported and name stomp_durable_name and stomp_queue: %v", err)
	}
}

func TestDurableOptions(t *testing.T) {
	o := durableOptions("x")
	o.Queue = "/queue/q"
	err := o.Validate()
	if err == nil || !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), "stomp_queue") || !strings.Contains(err.Error(), "stomp_durable_name") {
		t.Fatalf("Queue and DurableName both set: %v, want an error naming stomp_queue and stomp_durable_name", err)
	}
	for _, bad := range []string{"a\nb", " a", `a\b`} {
		if err := durableOptions(bad).Validate(); err == nil || !strings.Contains(err.Error(), "stomp_durable_name") {
			t.Errorf("DurableName %q: %v, want an error naming stomp_durable_name", bad, err)
		}
	}
	if err := durableOptions("bridge-1.example").Validate(); err != nil {
		t.Errorf("a plain DurableName: %v", err)
	}
}

// TestActiveMQQueueNackRedelivers: on ActiveMQ a transient Nack of a
// stomp_queue delivery brings it back. ActiveMQ's own NACK would move it
// to the dead-letter queue, where the consumer never sees it again.
func TestActiveMQQueueNackRedelivers(t *testing.T) {
	brokertest.Use(t, brokertest.ActiveMQSTOMP)
	queue := fmt.Sprintf("/queue/gofedmsg.qtest.%08x", rand.Uint32())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := testOptions(brokertest.ActiveMQSTOMP)
	o.Queue = queue
	sub := newT(t, o)
	ch, err := sub.Subscribe(ctx)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	// The operator's feed of the queue (a composite destination, say): a
	// plain client sending to it, the topic in original-destination as
	// ActiveMQ's forwarding keeps it.
	pub, err := gostomp.Dial("tcp", brokertest.ActiveMQSTOMP.Addr, gostomp.ConnOpt.Host("/"), gostomp.ConnOpt.Login("guest", "guest"))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Disconnect()
	if err := pub.Send(queue, "application/json", []byte(`{"n":1}`), gostomp.SendOpt.Receipt,
		gostomp.SendOpt.Header("persistent", "true"), gostomp.SendOpt.Header("original-destination", "/topic/org.example.q.one")); err != nil {
		t.Fatal(err)
	}
	d := recv(t, ch, 10*time.Second, "first delivery")
	if err := d.Nack(ctx, errors.New("sink down")); err != nil {
		t.Fatalf("Nack: %v", err)
	}
	d = recv(t, ch, 15*time.Second, "redelivery after a transient Nack")
	if string(d.Message.Body) != `{"n":1}` {
		t.Fatalf("after Nack got %q, want the Nacked message again", d.Message.Body)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatalf("Ack of the redelivery: %v", err)
	}
}
