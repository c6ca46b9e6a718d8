package bridge

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/transport"
)

// A body is forwarded byte for byte, whatever its spacing, key order or
// even validity as JSON, and the headers and msg_id come along.
func TestPassthroughByteForByte(t *testing.T) {
	noLeak(t)
	src, dst := newMemory(t), newMemory(t)
	b, err := New([]RouteConfig{{Name: "r", From: "src", To: "dst"}},
		map[string]transport.Transport{"src": src, "dst": dst}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	start(t, b)
	out := subscribe(t, dst)

	bodies := [][]byte{
		[]byte(`{"topic": "a",  "msg": {"z": 1.0, "a": "\u00e9"}, "i": 1}`), // not canonical: must stay so
		[]byte("{\"msg\":{}}\n\t "),
		[]byte("not json at all \xff\x00"),
		{},
	}
	for i, body := range bodies {
		m := &transport.Message{Topic: "org.fedoraproject.dev.x", Body: body, ID: "id-" + string(rune('a'+i)), Headers: map[string]string{"h": "v"}}
		if err := src.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range bodies {
		got := receive(t, out)
		if !bytes.Equal(got.Body, want) {
			t.Errorf("body changed:\n got %q\nwant %q", got.Body, want)
		}
		if got.Topic != "org.fedoraproject.dev.x" || got.Headers["h"] != "v" || !strings.HasPrefix(got.ID, "id-") {
			t.Errorf("topic/id/headers not carried: %+v", got)
		}
	}
	s := waitStats(t, b, 0, func(s RouteStats) bool { return s.Forwarded == uint64(len(bodies)) })
	if s.Received != 4 || s.DroppedTotal() != 0 || s.Filtered != 0 {
		t.Errorf("stats %+v", s)
	}
}

// Glob and prefix patterns select the same topics whether the source
// filters (memory) or only the bridge does (a prefix-only source, like
// ZeroMQ with a glob).
func TestTopicFiltering(t *testing.T) {
	topics := map[string]bool{
		"org.fedoraproject.prod.bodhi.update.comment": true,  // glob
		"org.fedoraproject.stg.bodhi.buildroot":       true,  // glob: '*' spans dots
		"org.fedoraproject.prod.logger.log":           true,  // prefix
		"org.fedoraproject.prod.loggerx":              true,  // prefix is a byte prefix, as in fedmsg
		"org.fedoraproject.prod.git.receive":          false, // neither
		"org.fedoraproject.bodhi":                     false, // glob must match the whole topic
		"com.example.prod.bodhi.update":               false,
	}
	for name, wrap := range map[string]func(transport.Transport) transport.Transport{
		"source-filters": func(t transport.Transport) transport.Transport { return t },
		"bridge-filters": func(t transport.Transport) transport.Transport { return prefixOnly{t} },
	} {
		t.Run(name, func(t *testing.T) {
			noLeak(t)
			src, dst := newMemory(t), newMemory(t)
			b, err := New([]RouteConfig{{Name: "r", From: "src", To: "dst",
				Topics: []string{"org.fedoraproject.*.bodhi.*", "org.fedoraproject.prod.logger"}}},
				map[string]transport.Transport{"src": wrap(src), "dst": dst}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			start(t, b)
			out := subscribe(t, dst)
			want := 0
			for topic, pass := range topics {
				publish(t, src, topic, []byte(`{}`))
				if pass {
					want++
				}
			}
			for range want {
				m := receive(t, out)
				if !topics[m.Topic] {
					t.Errorf("%q forwarded, should have been filtered", m.Topic)
				}
			}
			if name == "bridge-filters" {
				waitStats(t, b, 0, func(s RouteStats) bool { return s.Filtered == uint64(len(topics)-want) })
			}
			nothingMore(t, out)
		})
	}
}

// On an at-least-once route a sink that fails is not a loss: the source
// is Nacked, redelivers, and every message arrives once the sink is back,
// none twice. The source is acked only after the sink confirmed.
func TestAtLeastOnceSurvivesSinkFailures(t *testing.T) {
	noLeak(t)
	src, dst := newMemory(t), newMemory(t)
	sink := &flaky{Transport: dst}
	sink.failLeft.Store(3)
	b, err := New([]RouteConfig{{Name: "r", From: "src", To: "dst", Delivery: AtLeastOnce}},
		map[string]transport.Transport{"src": src, "dst": sink}, Options{RetryMin: time.Millisecond, RetryMax: 4 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start(t, b)
	out := subscribe(t, dst)
	for i := range 5 {
		publish(t, src, "t", []byte{'0' + byte(i)})
	}
	// A redelivery may come after the message the source was already
	// handing over (memory's and AMQP's requeue), so order is not
	// promised across a failure; each message arriving exactly once is.
	seen := map[string]int{}
	for range 5 {
		seen[string(receive(t, out).Body)]++
	}
	for i := range 5 {
		if k := string(rune('0' + i)); seen[k] != 1 {
			t.Errorf("message %s arrived %d times", k, seen[k])
		}
	}
	// Each failed publish hands back its whole batch, so how many
	// messages were retried depends on how they were batched; every
	// retry is a redelivery, and nothing is dropped.
	s := waitStats(t, b, 0, func(s RouteStats) bool { return s.Forwarded == 5 })
	if s.Retried < 3 || s.Received != 5+s.Retried || s.DroppedTotal() != 0 {
		t.Errorf("stats %+v, want at least 3 retried, each redelivered once, no drop", s)
	}
	if sink.attempts.Load() < 4 {
		t.Errorf("%d publish attempts, want 3 failed and at least one that passed", sink.attempts.Load())
	}
	nothingMore(t, out)
}

// On an at-most-once route a sink failure is a counted loss: the source
// is acked and does not redeliver.
func TestAtMostOnceCountsSinkFailure(t *testing.T) {
	noLeak(t)
	src, dst := newMemory(t), newMemory(t)
	sink := &flaky{Transport: dst}
	sink.failLeft.Store(1)
	// One message per publish, so exactly the first one is lost.
	b, err := New([]RouteConfig{{Name: "r", From: "src", To: "dst"}},
		map[string]transport.Transport{"src": src, "dst": sink}, Options{MaxBatch: 1})
	if err != nil {
		t.Fatal(err)
	}
	start(t, b)
	out := subscribe(t, dst)
	publish(t, src, "t", []byte("lost"))
	publish(t, src, "t", []byte("kept"))
	if m := receive(t, out); string(m.Body) != "kept" {
		t.Fatalf("got %q", m.Body)
	}
	s := waitStats(t, b, 0, func(s RouteStats) bool { return s.Forwarded == 1 })
	if s.Dropped["sink_error"] != 1 || s.Received != 2 || s.Retried != 0 {
		t.Errorf("stats %+v", s)
	}
	if sink.attempts.Load() != 2 {
		t.Errorf("%d publish attempts, want 2 (no redelivery)", sink.attempts.Load())
	}
	nothingMore(t, out)
}

// A sink that refuses the message itself is not retried forever.
func TestSinkRejectionIsPermanent(t *testing.T) {
	src, dst := newMemory(t), newMemory(t)
	rejecting := &rejectSink{Transport: dst}
	b, err := New([]RouteConfig{{Name: "r", From: "src", To: "dst", Delivery: AtLeastOnce}},
		map[string]transport.Transport{"src": src, "dst": rejecting}, Options{RetryMin: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start(t, b)
	publish(t, src, "t", []byte("x"))
	s := waitStats(t, b, 0, func(s RouteStats) bool { return s.Dropped["sink_rejected"] == 1 })
	time.Sleep(20 * time.Millisecond) // a redelivery would show up as a second receive
	if s = b.Stats()[0]; s.Received != 1 || s.Retried != 0 {
		t.Errorf("stats %+v: a rejected message was redelivered", s)
	}
}

type rejectSink struct{ transport.Transport }

func (rejectSink) Publish(context.Context, ...*transport.Message) error {
	return errors.Join(transport.ErrBadMessage, errors.New("frame too large"))
}

// At-least-once is refused at start-up, naming the route, the transport
// and why, when the source cannot redeliver (ZeroMQ) or the sink cannot
// confirm.
func TestAtLeastOnceRefusedWithoutCapabilities(t *testing.T) {
	full := newMemory(t)
	zmqLike := limited{full, transport.Capabilities{Ordered: true}}
	cases := []struct {
		name     string
		from, to transport.Transport
		want     []string
	}{
		{"source cannot redeliver", zmqLike, full, []string{`route "bus-to-rabbit"`, `source "a"`, "cannot redeliver"}},
		{"sink cannot confirm", full, zmqLike, []string{`route "bus-to-rabbit"`, `sink "b"`, "cannot confirm"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New([]RouteConfig{{Name: "bus-to-rabbit", From: "a", To: "b", Delivery: AtLeastOnce}},
				map[string]transport.Transport{"a": c.from, "b": c.to}, Options{})
			if !errors.Is(err, ErrGuaranteeUnavailable) {
				t.Fatalf("err %v, want ErrGuaranteeUnavailable", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	// The same transports are fine at-most-once.
	if _, err := New([]RouteConfig{{Name: "r", From: "a", To: "b"}},
		map[string]transport.Transport{"a": zmqLike, "b": zmqLike}, Options{}); err != nil {
		t.Errorf("at-most-once refused: %v", err)
	}
}

func TestNewRefusesPolicyWithoutMaterial(t *testing.T) {
	m := newMemory(t)
	trs := map[string]transport.Transport{"a": m, "b": newMemory(t)}
	for policy, want := range map[SignaturePolicy]string{RequireValid: "validator", Resign: "certificate"} {
		_, err := New([]RouteConfig{{Name: "r", From: "a", To: "b", Signatures: policy}}, trs, Options{})
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), `key "signatures"`) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s without material: %v", policy, err)
		}
	}
	_, err := New([]RouteConfig{{Name: "r", From: "a", To: "nope"}}, trs, Options{})
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), `route "r": key "to": unknown transport "nope"`) {
		t.Errorf("unknown transport: %v", err)
	}
}

// Close finishes quickly when idle, is bounded by its ctx when a sink
// never confirms, and leaves no goroutine behind either way; the message
// caught in flight is handed back, not acked.
func TestCloseBoundedNoLeak(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		noLeak(t)
		src, dst := newMemory(t), newMemory(t)
		b, err := New([]RouteConfig{{Name: "r", From: "src", To: "dst"}}, map[string]transport.Transport{"src": src, "dst": dst}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { errc <- b.Run(context.Background()) }()
		<-b.Ready()
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Errorf("Run after Close: %v", err)
		}
		if err := b.Run(context.Background()); !errors.Is(err, ErrClosed) {
			t.Errorf("Run on a closed bridge: %v", err)
		}
	})
	t.Run("stuck sink", func(t *testing.T) {
		noLeak(t)
		src, dst := newMemory(t), newMemory(t)
		sink := &stuck{Transport: dst, entered: make(chan struct{})}
		b, err := New([]RouteConfig{{Name: "r", From: "src", To: "dst", Delivery: AtLeastOnce}},
			map[string]transport.Transport{"src": src, "dst": sink}, Options{SettleTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { errc <- b.Run(context.Background()) }()
		<-b.Ready()
		publish(t, src, "t", []byte("x"))
		<-sink.entered
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		began := time.Now()
		if err := b.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close: %v, want deadline exceeded", err)
		}
		if d := time.Since(began); d > 2*time.Second {
			t.Errorf("Close took %v", d)
		}
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Run did not return after Close")
		}
		if s := b.Stats()[0]; s.Forwarded != 0 || s.Retried != 1 {
			t.Errorf("stats %+v: the in-flight message should have been handed back", s)
		}
	})
	t.Run("ctx ends", func(t *testing.T) {
		noLeak(t)
		src, dst := newMemory(t), newMemory(t)
		b, err := New([]RouteConfig{{Name: "r", From: "src", To: "dst"}}, map[string]transport.Transport{"src": src, "dst": dst}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- b.Run(ctx) }()
		<-b.Ready()
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// A source closed under a running bridge stops it with an error, so the
// process exits instead of running without the route.
func TestSourceEndedStopsRun(t *testing.T) {
	noLeak(t)
	src, dst := newMemory(t), newMemory(t)
	b, err := New([]RouteConfig{{Name: "r", From: "src", To: "dst"}, {Name: "back", From: "dst", To: "src"}},
		map[string]transport.Transport{"src": src, "dst": dst}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- b.Run(context.Background()) }()
	<-b.Ready()
	if err := src.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrSourceEnded) || !strings.Contains(err.Error(), `route "r"`) {
			t.Errorf("Run: %v, want ErrSourceEnded for route r", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run kept going without its source")
	}
}
