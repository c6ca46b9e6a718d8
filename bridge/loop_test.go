package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/gofedmsg/fedmsg/transport"
)

// noHeaders drops Headers and ID on publish, like ZeroMQ, whose frames
// carry only the topic and the body: the msg_id must come from the body.
type noHeaders struct{ transport.Transport }

func (n noHeaders) Publish(ctx context.Context, msgs ...*transport.Message) error {
	out := make([]*transport.Message, len(msgs))
	for i, m := range msgs {
		out[i] = &transport.Message{Topic: m.Topic, Body: m.Body}
	}
	return n.Transport.Publish(ctx, out...)
}

// settleSpy counts how the bridge settles the deliveries of a source.
type settleSpy struct {
	transport.Transport
	acks, nacks atomic.Int64
}

type spySettler struct {
	d   *transport.Delivery
	spy *settleSpy
}

func (s spySettler) Ack(ctx context.Context) error {
	s.spy.acks.Add(1)
	return s.d.Ack(ctx)
}

func (s spySettler) Nack(ctx context.Context, cause error) error {
	s.spy.nacks.Add(1)
	return s.d.Nack(ctx, cause)
}

func (s *settleSpy) Subscribe(ctx context.Context, patterns ...string) (<-chan *transport.Delivery, error) {
	in, err := s.Transport.Subscribe(ctx, patterns...)
	if err != nil {
		return nil, err
	}
	out := make(chan *transport.Delivery)
	go func() {
		defer close(out)
		for d := range in {
			select {
			case out <- transport.NewDelivery(d.Message, d.Source, spySettler{d, s}):
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

const testTopic = "org.fedoraproject.dev.bridge.loop"

// envelope is a body with a msg_id, spaced so that any re-serialisation
// would show.
func envelope(id string, i int) []byte {
	return fmt.Appendf(nil, `{"topic": %q,  "msg_id": %q, "msg": {"i": %d, "f": 1.0}}`, testTopic, id, i)
}

// collect receives exactly n messages from ch, then checks nothing more
// comes.
func collect(t *testing.T, ch <-chan *transport.Message, n int) []*transport.Message {
	t.Helper()
	out := make([]*transport.Message, 0, n)
	for range n {
		out = append(out, receive(t, ch))
	}
	nothingMore(t, ch)
	return out
}

// countBodies counts each body's arrivals.
func countBodies(msgs []*transport.Message) map[string]int {
	c := map[string]int{}
	for _, m := range msgs {
		c[string(m.Body)]++
	}
	return c
}

func newBridge(t *testing.T, routes []RouteConfig, tr map[string]transport.Transport, opts Options) *Bridge {
	t.Helper()
	b, err := New(routes, tr, opts)
	if err != nil {
		t.Fatal(err)
	}
	start(t, b)
	return b
}

// The bridge appends its id to x-gofedmsg-bridge and counts the hop,
// keeps other headers, and never touches the body.
func TestLoopHeadersStamped(t *testing.T) {
	noLeak(t)
	src, dst := newMemory(t), newMemory(t)
	b := newBridge(t, []RouteConfig{{Name: "r", From: "src", To: "dst"}},
		map[string]transport.Transport{"src": src, "dst": dst}, Options{BridgeID: "me"})
	out := subscribe(t, dst)

	cases := []struct {
		in               map[string]string
		wantList, wantHo string
	}{
		{nil, "me", "1"},
		{map[string]string{"h": "v"}, "me", "1"},
		{map[string]string{HeaderBridge: "a", HeaderHops: "1"}, "a,me", "2"},
		{map[string]string{HeaderBridge: "a,b", HeaderHops: "2"}, "a,b,me", "3"},
		{map[string]string{HeaderBridge: "a,b", HeaderHops: "junk"}, "a,b,me", "3"}, // count from the list
		{map[string]string{HeaderBridge: "a", HeaderHops: "0"}, "a,me", "2"},        // never below the list
	}
	for i, c := range cases {
		body := envelope(fmt.Sprintf("id-%d", i), i)
		in := &transport.Message{Topic: testTopic, Body: body, Headers: c.in}
		if err := src.Publish(context.Background(), in); err != nil {
			t.Fatal(err)
		}
		got := receive(t, out)
		if !bytes.Equal(got.Body, body) {
			t.Errorf("case %d: body changed: %q", i, got.Body)
		}
		if got.Headers[HeaderBridge] != c.wantList || got.Headers[HeaderHops] != c.wantHo {
			t.Errorf("case %d: headers %v, want %s=%q %s=%q", i, got.Headers, HeaderBridge, c.wantList, HeaderHops, c.wantHo)
		}
		if c.in["h"] != "" && got.Headers["h"] != c.in["h"] {
			t.Errorf("case %d: other header lost: %v", i, got.Headers)
		}
	}
	if c := cases[1].in; len(c) != 1 {
		t.Errorf("the source's headers were modified: %v", c)
	}
	if b.ID() != "me" {
		t.Errorf("ID() = %q", b.ID())
	}
}

// A message that already crossed this bridge, or crossed MaxHops bridges,
// is acked, not forwarded, and counted.
func TestLoopAndMaxHopsAckedAndCounted(t *testing.T) {
	noLeak(t)
	mem, dst := newMemory(t), newMemory(t)
	src := &settleSpy{Transport: mem}
	b := newBridge(t, []RouteConfig{{Name: "r", From: "src", To: "dst", Delivery: AtLeastOnce}},
		map[string]transport.Transport{"src": src, "dst": dst}, Options{BridgeID: "me", MaxHops: 3})
	out := subscribe(t, dst)

	send := func(id string, h map[string]string) {
		t.Helper()
		if err := mem.Publish(context.Background(), &transport.Message{Topic: testTopic, Body: envelope(id, 0), Headers: h}); err != nil {
			t.Fatal(err)
		}
	}
	send("loop1", map[string]string{HeaderBridge: "me", HeaderHops: "1"})
	send("loop2", map[string]string{HeaderBridge: "x, me ,y", HeaderHops: "2"})
	send("hops", map[string]string{HeaderBridge: "a,b,c", HeaderHops: "3"})
	send("hops-nolist", map[string]string{HeaderHops: "7"})
	send("ok", map[string]string{HeaderBridge: "a,b", HeaderHops: "2"}) // third hop allowed
	got := receive(t, out)
	if !bytes.Equal(got.Body, envelope("ok", 0)) || got.Headers[HeaderHops] != "3" {
		t.Errorf("forwarded %q %v", got.Body, got.Headers)
	}
	s := waitStats(t, b, 0, func(s RouteStats) bool { return s.Received == 5 && s.Forwarded == 1 && s.DroppedTotal() == 4 })
	if s.Dropped["loop"] != 2 || s.Dropped["max_hops"] != 2 || s.Retried != 0 {
		t.Errorf("stats %+v", s)
	}
	nothingMore(t, out)
	if a, n := src.acks.Load(), src.nacks.Load(); a != 5 || n != 0 {
		t.Errorf("settled with %d acks, %d nacks; want 5 acks", a, n)
	}
}

// Two bridges in opposite directions between the same two header-carrying
// transports: every message reaches y exactly once and comes back to x
// at most once (bridge B cannot know that x is where it started), then
// bridge A recognises its own id and stops it. With MaxHops 1, B forwards
// nothing a bridge already carried, and x sees each message only once.
func TestTwoBridgesOppositeDirections(t *testing.T) {
	const n = 50
	for _, tc := range []struct {
		name    string
		maxHops int
		backToX int // extra copies per message on x
	}{
		{"default-max-hops", 0, 1},
		{"max-hops-1", 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeak(t)
			x, y := newMemory(t), newMemory(t)
			tr := map[string]transport.Transport{"x": x, "y": y}
			a := newBridge(t, []RouteConfig{{Name: "x-to-y", From: "x", To: "y"}}, tr, Options{BridgeID: "A", MaxHops: tc.maxHops})
			b := newBridge(t, []RouteConfig{{Name: "y-to-x", From: "y", To: "x"}}, tr, Options{BridgeID: "B", MaxHops: tc.maxHops})
			onX, onY := subscribe(t, x), subscribe(t, y)

			for i := range n {
				publish(t, x, testTopic, envelope(fmt.Sprintf("m-%d", i), i))
			}
			ys := countBodies(collect(t, onY, n))
			xs := countBodies(collect(t, onX, n*(1+tc.backToX)))
			for i := range n {
				body := envelope(fmt.Sprintf("m-%d", i), i)
				if ys[string(body)] != 1 || xs[string(body)] != 1+tc.backToX {
					t.Errorf("message %d: %d times on y, %d on x", i, ys[string(body)], xs[string(body)])
				}
			}
			sa := waitStats(t, a, 0, func(s RouteStats) bool { return s.Received == uint64(n*(1+tc.backToX)) })
			sb := waitStats(t, b, 0, func(s RouteStats) bool { return s.Received == n })
			if sa.Forwarded != n || sa.Dropped["loop"] != uint64(n*tc.backToX) {
				t.Errorf("bridge A: %+v", sa)
			}
			if sb.Forwarded != uint64(n*tc.backToX) || sb.Dropped["max_hops"] != uint64(n*(1-tc.backToX)) {
				t.Errorf("bridge B: %+v", sb)
			}
			// Bounded: nothing is still travelling.
			nothingMore(t, onX)
			nothingMore(t, onY)
			if a.Stats()[0].Received != sa.Received || b.Stats()[0].Received != sb.Received {
				t.Errorf("still forwarding: A %+v, B %+v", a.Stats()[0], b.Stats()[0])
			}
		})
	}
}

// One bridge running both directions: its own output coming back is
// stopped before it reaches x again, by its id in the headers when the
// transports carry them, by the echo window (msg_id decoded from the body)
// when they do not, as with ZeroMQ.
func TestOneBridgeBothDirectionsNoEcho(t *testing.T) {
	const n = 50
	for _, tc := range []struct {
		name   string
		wrap   func(transport.Transport) transport.Transport
		reason string
	}{
		{"headers", func(t transport.Transport) transport.Transport { return t }, "loop"},
		{"no-headers", func(t transport.Transport) transport.Transport { return noHeaders{t} }, "echo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeak(t)
			x, y := newMemory(t), newMemory(t)
			b := newBridge(t, []RouteConfig{{Name: "x-to-y", From: "x", To: "y"}, {Name: "y-to-x", From: "y", To: "x"}},
				map[string]transport.Transport{"x": tc.wrap(x), "y": tc.wrap(y)}, Options{})
			onX, onY := subscribe(t, x), subscribe(t, y)
			for i := range n {
				publish(t, x, testTopic, envelope(fmt.Sprintf("m-%d", i), i))
			}
			for what, c := range map[string]map[string]int{"y": countBodies(collect(t, onY, n)), "x": countBodies(collect(t, onX, n))} {
				for i := range n {
					if k := c[string(envelope(fmt.Sprintf("m-%d", i), i))]; k != 1 {
						t.Errorf("message %d seen %d times on %s", i, k, what)
					}
				}
			}
			back := waitStats(t, b, 1, func(s RouteStats) bool { return s.Received == n })
			if back.Forwarded != 0 || back.Dropped[tc.reason] != n || back.DroppedTotal() != n {
				t.Errorf("route y-to-x: %+v, want %d %s", back, n, tc.reason)
			}
			if fwd := b.Stats()[0]; fwd.Forwarded != n || fwd.Received != n {
				t.Errorf("route x-to-y: %+v", fwd)
			}
		})
	}
}

// Two bridges in opposite directions over transports without headers:
// bridge B's copy comes back to x once, and bridge A's route, which
// already forwarded that msg_id, stops it as a duplicate. Nothing loops.
func TestTwoBridgesWithoutHeadersStopped(t *testing.T) {
	const n = 30
	noLeak(t)
	x, y := newMemory(t), newMemory(t)
	tr := map[string]transport.Transport{"x": noHeaders{x}, "y": noHeaders{y}}
	a := newBridge(t, []RouteConfig{{Name: "x-to-y", From: "x", To: "y"}}, tr, Options{BridgeID: "A"})
	b := newBridge(t, []RouteConfig{{Name: "y-to-x", From: "y", To: "x"}}, tr, Options{BridgeID: "B"})
	onX, onY := subscribe(t, x), subscribe(t, y)
	for i := range n {
		publish(t, x, testTopic, envelope(fmt.Sprintf("m-%d", i), i))
	}
	collect(t, onY, n)
	collect(t, onX, 2*n)
	sa := waitStats(t, a, 0, func(s RouteStats) bool { return s.Received == 2*n })
	if sa.Forwarded != n || sa.Dropped["duplicate"] != n {
		t.Errorf("bridge A: %+v", sa)
	}
	if sb := b.Stats()[0]; sb.Forwarded != n || sb.Received != n {
		t.Errorf("bridge B: %+v", sb)
	}
}

// A msg_id the route forwarded recently is acked and counted, not
// forwarded; messages without a msg_id always go through; the window
// forgets the oldest first.
func TestDuplicatesSuppressed(t *testing.T) {
	noLeak(t)
	mem, dst := newMemory(t), newMemory(t)
	src := &settleSpy{Transport: mem}
	b := newBridge(t, []RouteConfig{{Name: "r", From: "src", To: "dst"}},
		map[string]transport.Transport{"src": src, "dst": dst}, Options{DedupWindow: 2})
	out := subscribe(t, dst)

	send := []struct {
		id, body string
		forward  bool
	}{
		{"a", string(envelope("a", 1)), true},
		{"", string(envelope("a", 2)), false}, // msg_id from the body
		{"a", "not json", false},              // msg_id from Message.ID
		{"", `{"msg": {}}`, true},             // no msg_id at all
		{"", `{"msg": {}}`, true},
		{"", "not json", true},
		{"b", string(envelope("b", 1)), true},
		{"c", string(envelope("c", 1)), true}, // window of 2: "a" forgotten
		{"a", string(envelope("a", 3)), true},
		{"c", string(envelope("c", 2)), false},
	}
	var want [][]byte
	for _, s := range send {
		if err := mem.Publish(context.Background(), &transport.Message{Topic: testTopic, ID: s.id, Body: []byte(s.body)}); err != nil {
			t.Fatal(err)
		}
		if s.forward {
			want = append(want, []byte(s.body))
		}
	}
	for _, w := range want {
		if got := receive(t, out); !bytes.Equal(got.Body, w) {
			t.Errorf("got %q, want %q", got.Body, w)
		}
	}
	nothingMore(t, out)
	st := waitStats(t, b, 0, func(s RouteStats) bool { return s.Received == uint64(len(send)) })
	if st.Forwarded != uint64(len(want)) || st.Dropped["duplicate"] != 3 || st.DroppedTotal() != 3 {
		t.Errorf("stats %+v", st)
	}
	if a, n := src.acks.Load(), src.nacks.Load(); a != int64(len(send)) || n != 0 {
		t.Errorf("%d acks, %d nacks; want %d acks", a, n, len(send))
	}
}

// One source fanned out to two sinks by two routes of one bridge: both
// get every message, although the second route forwards msg_ids the
// first has just published.
func TestFanOutNotSuppressed(t *testing.T) {
	const n = 50
	for _, wrap := range []func(transport.Transport) transport.Transport{
		func(t transport.Transport) transport.Transport { return t },
		func(t transport.Transport) transport.Transport { return noHeaders{t} },
	} {
		noLeak(t)
		x, y, z := newMemory(t), newMemory(t), newMemory(t)
		b := newBridge(t, []RouteConfig{{Name: "x-to-y", From: "x", To: "y"}, {Name: "x-to-z", From: "x", To: "z"}},
			map[string]transport.Transport{"x": wrap(x), "y": wrap(y), "z": wrap(z)}, Options{})
		onY, onZ := subscribe(t, y), subscribe(t, z)
		for i := range n {
			publish(t, x, testTopic, envelope(fmt.Sprintf("m-%d", i), i))
		}
		for _, ch := range []<-chan *transport.Message{onY, onZ} {
			for i, m := range collect(t, ch, n) {
				if !bytes.Equal(m.Body, envelope(fmt.Sprintf("m-%d", i), i)) {
					t.Errorf("message %d: %q", i, m.Body)
				}
			}
		}
		for i := range 2 {
			if s := waitStats(t, b, i, func(s RouteStats) bool { return s.Received == n }); s.Forwarded != n || s.DroppedTotal() != 0 {
				t.Errorf("route %d: %+v", i, s)
			}
		}
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// Disabled windows suppress nothing.
func TestWindowsDisabled(t *testing.T) {
	noLeak(t)
	src, dst := newMemory(t), newMemory(t)
	b := newBridge(t, []RouteConfig{{Name: "r", From: "src", To: "dst"}},
		map[string]transport.Transport{"src": src, "dst": dst}, Options{DedupWindow: -1, EchoWindow: -1, MaxHops: -1})
	out := subscribe(t, dst)
	for range 3 {
		if err := src.Publish(context.Background(), &transport.Message{Topic: testTopic, ID: "same", Body: envelope("same", 0),
			Headers: map[string]string{HeaderHops: "99"}}); err != nil {
			t.Fatal(err)
		}
	}
	collect(t, out, 3)
	if s := waitStats(t, b, 0, func(s RouteStats) bool { return s.Forwarded == 3 }); s.DroppedTotal() != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestBridgeID(t *testing.T) {
	src, dst := newMemory(t), newMemory(t)
	tr := map[string]transport.Transport{"src": src, "dst": dst}
	routes := []RouteConfig{{Name: "r", From: "src", To: "dst"}}
	for _, bad := range []string{"a,b", "a b", "a\nb"} {
		if _, err := New(routes, tr, Options{BridgeID: bad}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("BridgeID %q: err %v, want ErrInvalidConfig", bad, err)
		}
	}
	b1, err := New(routes, tr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b2, err := New(routes, tr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b1.ID() == "" || b1.ID() == b2.ID() || checkBridgeID(b1.ID()) != nil {
		t.Errorf("generated ids %q and %q", b1.ID(), b2.ID())
	}
}

func TestIDWindow(t *testing.T) {
	w := newIDWindow(3)
	for _, k := range []string{"a", "b", "c"} {
		w.add(k, true)
	}
	w.add("d", true) // evicts a
	if w.contains("a") || !w.contains("b") || !w.contains("d") || w.len() != 3 {
		t.Errorf("after eviction: a=%v b=%v d=%v len=%d", w.contains("a"), w.contains("b"), w.contains("d"), w.len())
	}
	w.add("b", true) // refreshed: now newest
	w.add("e", true) // evicts c, the oldest slot b held is stale
	w.add("f", true) // evicts d
	if !w.contains("b") || w.contains("c") || w.contains("d") || w.len() != 3 {
		t.Errorf("after refresh: b=%v c=%v d=%v len=%d", w.contains("b"), w.contains("c"), w.contains("d"), w.len())
	}

	// A failed publish forgets its pending entry, unless another publish
	// of the same key confirmed it or re-added it since.
	tok := w.add("p", false)
	w.remove("p", tok)
	if w.contains("p") {
		t.Error("pending entry not removed")
	}
	tok = w.add("q", false)
	w.confirm("q")
	w.remove("q", tok)
	if !w.contains("q") {
		t.Error("confirmed entry removed")
	}
	tok1 := w.add("r", false)
	tok2 := w.add("r", false)
	w.remove("r", tok1)
	if !w.contains("r") {
		t.Error("entry re-added since removed with a stale token")
	}
	w.remove("r", tok2)
	if w.contains("r") {
		t.Error("entry not removed with its token")
	}
	if w.len() > 3 {
		t.Errorf("window holds %d entries, capacity 3", w.len())
	}

	var off *idWindow = newIDWindow(-1)
	off.add("x", true)
	off.confirm("x")
	if off.contains("x") || off.len() != 0 {
		t.Error("disabled window remembered")
	}
}

// The msg_id of a header-less (ZeroMQ) delivery is decoded from the body,
// once per delivery: its cost against a typical envelope.
func BenchmarkMsgIDFromBody(b *testing.B) {
	body := fmt.Appendf(nil, `{"i": 1, "msg": {"comment": {"text": %q, "user": {"name": "bob"}}, "agent": "bob"}, "msg_id": "2026-81559e8c-2f27-4dc2-b107-020387b56416", "timestamp": 1760000000, "topic": %q, "username": "apache", "crypto": "x509", "signature": %q, "certificate": %q}`,
		bytes.Repeat([]byte("lorem ipsum "), 20), testTopic, bytes.Repeat([]byte("A"), 344), bytes.Repeat([]byte("B"), 2400))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if msgID("", body) == "" {
			b.Fatal("no msg_id")
		}
	}
}
