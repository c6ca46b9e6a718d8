package bridge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/transport"
)

// BenchmarkRoute is the bridge's own cost per message, transports aside:
// a header-less source as ZeroMQ is (msg_id read from the body, echo and
// dedup windows on) to an in-memory sink, the messages read off the sink
// as they come. `go test -run '^$' -bench Route -benchmem ./bridge/`.
func BenchmarkRoute(b *testing.B) {
	src, dst := newMemory(b), newMemory(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, err := dst.Subscribe(ctx)
	if err != nil {
		b.Fatal(err)
	}
	// ZeroMQ delivers neither headers nor an id, and cannot redeliver.
	headerless := limited{src, transport.Capabilities{}}
	br, err := New([]RouteConfig{{Name: "r", From: "src", To: "dst"}},
		map[string]transport.Transport{"src": headerless, "dst": dst}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	start(b, br)

	// Distinct envelopes of the benchmarks' size, made before the timer.
	msgs := make([]*transport.Message, b.N)
	for i := range msgs {
		msgs[i] = &transport.Message{Topic: "org.fedoraproject.dev.logger.log",
			Body: fmt.Appendf(nil, `{"i":%d,"msg":{"log":"%0500d"},"msg_id":"2026-%032d","timestamp":1795604977,"topic":"org.fedoraproject.dev.logger.log","username":"fedmsg"}`, i, 0, i)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for _, m := range msgs {
			if err := src.Publish(ctx, m); err != nil {
				return
			}
		}
	}()
	for i := range b.N {
		select {
		case d := <-out:
			_ = d.Ack(ctx)
		case <-time.After(10 * time.Second):
			b.Fatalf("%d of %d messages crossed the route", i, b.N)
		}
	}
}
