package zmq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"

	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/transport"
)

func testOptions(t testing.TB) Options {
	o := DefaultOptions()
	o.SubscriberReady = 5 * time.Second
	o.Linger = 200 * time.Millisecond
	return o
}

func closeT(t testing.TB, c interface{ Close(context.Context) error }) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Errorf("close: %v", err)
	}
}

// startRelay runs a relay on loopback with ephemeral ports.
func startRelay(t testing.TB, o Options) *Relay {
	t.Helper()
	r, err := NewRelay(o, []string{"tcp://127.0.0.1:*"}, []string{"tcp://127.0.0.1:*"})
	if err != nil {
		t.Fatalf("NewRelay: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("relay Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("relay did not stop within 5s of cancel")
		}
	})
	return r
}

// awaitFlow repeats send until a probe comes out of recv. It stands in for
// a sleep: a SUB's subscription reaches a PUB asynchronously (ZeroMQ's slow
// joiner), and nothing else says when it has.
func awaitFlow(t testing.TB, send func(), recv <-chan *transport.Delivery) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	send()
	for {
		select {
		case d, ok := <-recv:
			if !ok {
				t.Fatal("subscription closed while waiting for the first message")
			}
			if d.Message.Topic == "probe" {
				// drain later probes already in flight
				for {
					select {
					case d := <-recv:
						if d.Message.Topic != "probe" {
							t.Fatalf("unexpected message while draining probes: %q", d.Message.Topic)
						}
					case <-time.After(100 * time.Millisecond):
						return
					}
				}
			}
		case <-tick.C:
			send()
		case <-deadline:
			t.Fatal("no message flowed within 10s")
		}
	}
}

var probe = &transport.Message{Topic: "probe", Body: []byte(`{"probe":true}`)}

func receive(t testing.TB, recv <-chan *transport.Delivery) *transport.Delivery {
	t.Helper()
	select {
	case d, ok := <-recv:
		if !ok {
			t.Fatal("subscription closed")
		}
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a message")
	}
	return nil
}

func TestPublisherBindsFirstFreeEndpoint(t *testing.T) {
	busy, err := New(Options{Bind: []string{"tcp://127.0.0.1:*"}, IOThreads: 1, MaxMsgSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer closeT(t, busy)
	port := busy.PublisherAddr()[strings.LastIndex(busy.PublisherAddr(), ":")+1:]

	o := testOptions(t)
	o.BindKey = `endpoints["bodhi.app01"]`
	o.Bind = []string{"tcp://app01.example.com:" + port, "tcp://127.0.0.1:*"}
	tr, err := New(o)
	if err != nil {
		t.Fatalf("want the second endpoint bound, got %v", err)
	}
	defer closeT(t, tr)
	if strings.HasSuffix(tr.PublisherAddr(), ":"+port) {
		t.Fatalf("bound the busy port %s", tr.PublisherAddr())
	}

	o.Bind = []string{"tcp://app01.example.com:" + port, "tcp://app02.example.com:" + port}
	_, err = New(o)
	if !errors.Is(err, ErrNoEndpoint) {
		t.Fatalf("want ErrNoEndpoint, got %v", err)
	}
	for _, want := range []string{`endpoints["bodhi.app01"]`, "tcp://*:" + port, "ddress already in use"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestPublisherBindAddrIgnoresHost(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://hub.fedoraproject.org:9940": "tcp://*:9940",
		"tcp://10.0.0.5:3000":              "tcp://*:3000",
		"tcp://127.0.0.1:3000":             "tcp://127.0.0.1:3000",
		"tcp://[::1]:3000":                 "tcp://[::1]:3000",
		"ipc:///var/run/fedmsg/x.sock":     "ipc:///var/run/fedmsg/x.sock",
	} {
		if got := PublisherBindAddr(in); got != want {
			t.Errorf("PublisherBindAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPublishSubscribeKeepsFramesAndFiltersByPrefix(t *testing.T) {
	pub, err := New(func() Options { o := testOptions(t); o.Bind = []string{"tcp://127.0.0.1:*"}; return o }())
	if err != nil {
		t.Fatal(err)
	}
	defer closeT(t, pub)
	addr := strings.Replace(pub.PublisherAddr(), "0.0.0.0", "127.0.0.1", 1)

	sub, err := New(func() Options { o := testOptions(t); o.Subscribe = []string{addr}; return o }())
	if err != nil {
		t.Fatal(err)
	}
	defer closeT(t, sub)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	recv, err := sub.Subscribe(ctx, "org.fedoraproject.dev.wiki.", "probe")
	if err != nil {
		t.Fatal(err)
	}
	awaitFlow(t, func() { pub.Publish(ctx, probe) }, recv)

	topic := sharedtest.Read(t, "fedmsg-wire", "logger-unicode-topic.frame0")
	body := sharedtest.Read(t, "fedmsg-wire", "logger-unicode-topic.frame1")
	err = pub.Publish(ctx,
		&transport.Message{Topic: "org.fedoraproject.dev.bodhi.update", Body: []byte(`{"x":1}`)},
		&transport.Message{Topic: string(topic), Body: body})
	if err != nil {
		t.Fatal(err)
	}
	d := receive(t, recv)
	if d.Message.Topic != string(topic) || !bytes.Equal(d.Message.Body, body) {
		t.Fatalf("got %q %q, want the capture's frames verbatim", d.Message.Topic, d.Message.Body)
	}
	if d.Source != addr {
		t.Errorf("Source = %q, want %q", d.Source, addr)
	}
	if err := d.Ack(ctx); err != nil {
		t.Errorf("Ack on ZeroMQ must be a no-op, got %v", err)
	}
}

func TestRelayForwardsVerbatimAndDropsBadFrames(t *testing.T) {
	o := testOptions(t)
	o.MaxMsgSize = 4096
	relay := startRelay(t, o)

	sub, err := New(func() Options { o := testOptions(t); o.Subscribe = []string{relay.OutboundAddr()}; return o }())
	if err != nil {
		t.Fatal(err)
	}
	defer closeT(t, sub)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	recv, err := sub.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// A raw PUB can send what our Transport never would.
	zctx, _ := zmq4.NewContext()
	raw, _ := zctx.NewSocket(zmq4.PUB)
	defer func() { raw.Close(); zctx.Term() }()
	raw.SetLinger(0)
	if err := raw.Connect(relay.InboundAddrs()[0]); err != nil {
		t.Fatal(err)
	}
	awaitFlow(t, func() { raw.SendMessage("probe", `{"probe":true}`) }, recv)
	before := relay.Stats().Received()

	bad := [][]any{
		{"org.fedoraproject.dev.one.frame"},
		{"org.fedoraproject.dev.three", `{"a":1}`, "extra"},
		{[]byte("org.fedoraproject.dev.\xff\xfe"), `{"a":1}`},
		{"org.fedoraproject.dev.array", `[1,2]`},
		{"org.fedoraproject.dev.notjson", `{"a":`},
		{"org.fedoraproject.dev.big", `{"a":"` + strings.Repeat("x", 5000) + `"}`},
	}
	for _, frames := range bad {
		if _, err := raw.SendMessage(frames...); err != nil {
			t.Fatal(err)
		}
	}
	topic := sharedtest.Read(t, "fedmsg-wire", "relay-in.frame0")
	body := sharedtest.Read(t, "fedmsg-wire", "relay-in.frame1")
	if _, err := raw.SendMessage(topic, body); err != nil {
		t.Fatal(err)
	}
	d := receive(t, recv)
	if d.Message.Topic != string(topic) || !bytes.Equal(d.Message.Body, body) {
		t.Fatalf("relay changed the message:\n got %q\nwant %q", d.Message.Body, body)
	}
	st := relay.Stats()
	for reason, want := range map[DropReason]uint64{DropFrames: 2, DropTopicUTF8: 1, DropNotObject: 2, DropOversize: 1} {
		if got := st.Dropped(reason); got != want {
			t.Errorf("dropped %s = %d, want %d", reason, got, want)
		}
	}
	if got := st.Received() - before; got != 1 {
		t.Errorf("forwarded %d messages after the probes, want 1", got)
	}
}

// With high_water_mark 0 nothing may be dropped however far the publisher
// runs ahead: libzmq's default of 1000 would lose most of this burst.
func TestHighWaterMarkZeroMeansNoLimit(t *testing.T) {
	o := testOptions(t)
	o.HighWaterMark = 0
	relay := startRelay(t, o)
	sub, err := New(func() Options { o := o; o.Subscribe = []string{relay.OutboundAddr()}; return o }())
	if err != nil {
		t.Fatal(err)
	}
	defer closeT(t, sub)
	pub, err := New(func() Options { o := o; o.Connect = relay.InboundAddrs(); return o }())
	if err != nil {
		t.Fatal(err)
	}
	defer closeT(t, pub)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	recv, err := sub.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	awaitFlow(t, func() { pub.Publish(ctx, probe) }, recv)

	const n = 20000
	msgs := make([]*transport.Message, n)
	for i := range msgs {
		msgs[i] = &transport.Message{Topic: "org.fedoraproject.dev.burst", Body: []byte(fmt.Sprintf(`{"i":%d}`, i))}
	}
	if err := pub.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		d := receive(t, recv)
		if want := fmt.Sprintf(`{"i":%d}`, i); string(d.Message.Body) != want {
			t.Fatalf("message %d: got %s, want %s (lost or reordered)", i, d.Message.Body, want)
		}
	}
}

func TestSubscribeEndsWithContextAndClose(t *testing.T) {
	tr, err := New(func() Options { o := testOptions(t); o.Subscribe = []string{"tcp://127.0.0.1:1"}; return o }())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	recv, err := tr.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-recv:
		if ok {
			t.Fatal("got a message from nowhere")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after ctx cancel")
	}
	recv2, err := tr.Subscribe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	closeT(t, tr)
	if _, ok := <-recv2; ok {
		t.Fatal("channel not closed by Close")
	}
	if err := tr.Publish(context.Background(), probe); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Publish after Close: want ErrClosed, got %v", err)
	}
}
