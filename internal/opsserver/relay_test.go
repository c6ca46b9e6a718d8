package opsserver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"

	"github.com/gofedmsg/fedmsg/internal/freeport"
	"github.com/gofedmsg/fedmsg/transport/zmq"
)

// The relay's in, out and drop counts on /metrics are exactly the good
// and malformed messages a plain ZeroMQ publisher sent it.
func TestRelayMetricsExactCounts(t *testing.T) {
	const maxSize = 1024
	in, out := freeport.Endpoint(t), freeport.Endpoint(t)
	o := zmq.DefaultOptions()
	o.MaxMsgSize, o.Linger = maxSize, 100*time.Millisecond
	r, err := zmq.NewRelay(o, []string{in}, []string{out})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	})

	s := New(nil)
	s.AddZMQForwarder("relay", r.Stats())
	base := startServer(t, s)

	// An XPUB is a PUB on the wire that also hears subscriptions: waiting
	// for the relay's lets the test send without ZeroMQ's slow-joiner loss.
	pub, err := zmq4.NewSocket(zmq4.XPUB)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Connect(in); err != nil {
		t.Fatal(err)
	}
	if err := pub.SetRcvtimeo(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if sub, err := pub.RecvBytes(0); err != nil || len(sub) == 0 || sub[0] != 1 {
		t.Fatalf("no subscription from the relay: %q %v", sub, err)
	}

	send := func(frames ...string) {
		t.Helper()
		parts := make([]any, len(frames))
		for i, f := range frames {
			parts[i] = f
		}
		if _, err := pub.SendMessage(parts...); err != nil {
			t.Fatal(err)
		}
	}
	const good = 7
	for i := range good {
		send("org.example.dev.test", fmt.Sprintf(`{"i": %d, "topic": "org.example.dev.test"}`, i))
	}
	// Malformed, by reason: 3 with a wrong frame count, 2 over the size
	// limit, 1 body that is not a JSON object, 1 topic that is not UTF-8.
	send("org.example.dev.test")
	send("org.example.dev.test")
	send("org.example.dev.test", "{}", "{}")
	send("org.example.dev.test", `{"pad": "`+strings.Repeat("x", maxSize)+`"}`)
	send("org.example.dev.test", `{"pad": "`+strings.Repeat("y", maxSize)+`"}`)
	send("org.example.dev.test", `[1, 2]`)
	send("org.example.\xff", `{}`)
	const bad = 7

	in_ := func() float64 {
		v, _ := value(scrape(t, base), "fedmsg_messages_in_total", "route", "relay", "transport", "zmq")
		return v
	}
	waitFor(t, "the relay to count every message", func() bool { return in_() >= good+bad })
	check(t, scrape(t, base), []expect{
		{"fedmsg_messages_in_total", []string{"route", "relay", "transport", "zmq"}, good + bad},
		{"fedmsg_messages_out_total", []string{"route", "relay", "transport", "zmq"}, good},
		{"fedmsg_messages_dropped_total", []string{"route", "relay", "transport", "zmq", "reason", "bad_frame_count"}, 3},
		{"fedmsg_messages_dropped_total", []string{"route", "relay", "transport", "zmq", "reason", "oversize"}, 2},
		{"fedmsg_messages_dropped_total", []string{"route", "relay", "transport", "zmq", "reason", "body_not_json_object"}, 1},
		{"fedmsg_messages_dropped_total", []string{"route", "relay", "transport", "zmq", "reason", "topic_not_utf8"}, 1},
	})
	if n := series(scrape(t, base), "fedmsg_messages_dropped_total"); n != 4 {
		t.Errorf("%d drop reasons reported, want the 4 that happened", n)
	}
}

// A ZeroMQ transport's subscriptions: received and dropped counts, and
// the age of the last message of each endpoint, present only for the
// endpoint that sent something.
func TestZMQTransportMetrics(t *testing.T) {
	busy, quiet := freeport.Endpoint(t), freeport.Endpoint(t)
	pub, err := zmq4.NewSocket(zmq4.XPUB)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Bind(busy); err != nil {
		t.Fatal(err)
	}
	o := zmq.DefaultOptions()
	o.Subscribe, o.Linger = []string{busy, quiet}, 100*time.Millisecond
	tr, err := zmq.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t.Cleanup(func() { _ = tr.Close(context.Background()) })
	ch, err := tr.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.SetRcvtimeo(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if sub, err := pub.RecvBytes(0); err != nil || len(sub) == 0 || sub[0] != 1 {
		t.Fatalf("no subscription from the transport: %q %v", sub, err)
	}

	s := New(nil)
	s.AddZMQTransport("bus", tr)
	base := startServer(t, s)

	before := time.Now()
	for i := range 2 {
		if _, err := pub.SendMessage("org.example.dev.test", fmt.Sprintf(`{"i": %d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pub.SendMessage("org.example.dev.test"); err != nil { // one frame: malformed
		t.Fatal(err)
	}
	for range 2 {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("the transport delivered nothing")
		}
	}
	waitFor(t, "the malformed message to be counted", func() bool {
		v, _ := value(scrape(t, base), "fedmsg_transport_received_total", "transport", "bus", "kind", "zmq")
		return v >= 3
	})
	fams := scrape(t, base)
	check(t, fams, []expect{
		{"fedmsg_transport_received_total", []string{"transport", "bus", "kind", "zmq"}, 3},
		{"fedmsg_transport_dropped_total", []string{"transport", "bus", "kind", "zmq", "reason", "bad_frame_count"}, 1},
	})
	age, ok := value(fams, "fedmsg_zmq_last_message_age_seconds", "transport", "bus", "endpoint", busy)
	if !ok || age < 0 || age > time.Since(before).Seconds() {
		t.Errorf("last message age of %s = %v (present %v), want within the %v since it sent", busy, age, ok, time.Since(before))
	}
	if n := series(fams, "fedmsg_zmq_last_message_age_seconds"); n != 1 {
		t.Errorf("%d endpoints with a last message age, want 1 (%s never sent)", n, quiet)
	}
}
