package zmq

import (
	"context"
	"strings"
	"testing"
	"time"

	zmq4 "github.com/pebbe/zmq4"
)

// benchBody is a 609-byte envelope, the size the raw baselines in
// shared/notes/brokers.md were measured with.
var benchBody = func() []byte {
	head := `{"i":1,"msg":{"log":"`
	tail := `"},"msg_id":"2026-e0c108a7-5dbc-42de-a0bf-6dca3c1b7b60","timestamp":1795604977,"topic":"org.fedoraproject.dev.logger.log","username":"fedmsg"}`
	return []byte(head + strings.Repeat("x", 609-len(head)-len(tail)) + tail)
}()

const benchTopic = "org.fedoraproject.dev.logger.log"

// benchForwarder measures a forwarder between a SUB bound on an inbound
// endpoint and a PUB bound on an outbound one, with a publisher and a
// subscriber on loopback TCP and high-water marks off, so nothing may be
// lost. Our relay and libzmq's zmq_proxy run on exactly this harness.
func benchForwarder(b *testing.B, run func(ctx context.Context, in, out *zmq4.Socket) error) {
	o := DefaultOptions()
	o.Linger = 0
	zctx, err := newContext(o)
	if err != nil {
		b.Fatal(err)
	}
	defer zctx.Term()
	mk := func(typ zmq4.Type) *zmq4.Socket {
		s, err := newSocket(zctx, typ, o)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	in, out, pub, sub := mk(zmq4.SUB), mk(zmq4.PUB), mk(zmq4.PUB), mk(zmq4.SUB)
	in.SetSubscribe("")
	in.SetRcvtimeo(pollInterval)
	sub.SetSubscribe("")
	sub.SetRcvtimeo(5 * time.Second)
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(in.Bind("tcp://127.0.0.1:*"))
	must(out.Bind("tcp://127.0.0.1:*"))
	inAddr, _ := in.GetLastEndpoint()
	outAddr, _ := out.GetLastEndpoint()
	must(pub.Connect(inAddr))
	must(sub.Connect(outAddr))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, in, out) }()
	// Stop the forwarder and close every socket before the deferred Term,
	// also when the benchmark fails: Term waits for open sockets.
	var runErr error
	defer func() {
		cancel()
		runErr = <-done
		for _, s := range []*zmq4.Socket{in, out, pub, sub} {
			s.Close()
		}
		if runErr != nil && zmq4.AsErrno(runErr) != zmq4.ETERM {
			b.Error(runErr)
		}
	}()

	// Wait for the path to carry a message (slow joiner), then measure.
	for {
		pub.SendMessage("probe", `{}`)
		if _, err := sub.RecvMessageBytes(zmq4.DONTWAIT); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for {
		sub.SetRcvtimeo(100 * time.Millisecond)
		if _, err := sub.RecvMessageBytes(0); err != nil {
			break
		}
	}
	sub.SetRcvtimeo(5 * time.Second)

	topic := []byte(benchTopic)
	b.SetBytes(int64(len(benchBody)))
	b.ResetTimer()
	start := time.Now()
	go func() {
		for i := 0; i < b.N; i++ {
			pub.SendBytes(topic, zmq4.SNDMORE)
			pub.SendBytes(benchBody, 0)
		}
	}()
	for i := 0; i < b.N; i++ {
		frames, err := sub.RecvMessageBytes(0)
		if err != nil {
			b.Fatalf("lost messages: received %d of %d: %v", i, b.N, err)
		}
		if len(frames) != 2 || len(frames[1]) != len(benchBody) {
			b.Fatalf("message %d mangled", i)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// BenchmarkRelay is our relay loop: every message checked (frames, UTF-8
// topic, size, JSON object) and forwarded byte for byte.
func BenchmarkRelay(b *testing.B) {
	o := DefaultOptions()
	var stats Stats
	benchForwarder(b, func(ctx context.Context, in, out *zmq4.Socket) error {
		return forwardFast(ctx, in, out, "bench", o, &stats)
	})
}

// BenchmarkRelayCopying is the portable loop the relay falls back to.
func BenchmarkRelayCopying(b *testing.B) {
	o := DefaultOptions()
	var stats Stats
	benchForwarder(b, func(ctx context.Context, in, out *zmq4.Socket) error {
		return forward(ctx, in, out, "bench", o, &stats)
	})
}

// BenchmarkLibzmqProxy is the raw baseline: libzmq's own zmq_proxy in C,
// which checks nothing, on the same sockets.
func BenchmarkLibzmqProxy(b *testing.B) {
	benchForwarder(b, func(ctx context.Context, in, out *zmq4.Socket) error {
		zctx, _ := in.Context()
		ctrlIn, _ := zctx.NewSocket(zmq4.PAIR)
		ctrlOut, _ := zctx.NewSocket(zmq4.PAIR)
		defer ctrlIn.Close()
		defer ctrlOut.Close()
		ctrlIn.Bind("inproc://bench-proxy-control")
		ctrlOut.Connect("inproc://bench-proxy-control")
		stop := make(chan struct{})
		go func() {
			<-ctx.Done()
			ctrlOut.Send("TERMINATE", 0)
			close(stop)
		}()
		err := zmq4.ProxySteerable(in, out, nil, ctrlIn)
		<-stop
		return err
	})
}
