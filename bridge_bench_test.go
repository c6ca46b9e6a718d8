package fedmsg_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gostomp "github.com/go-stomp/stomp/v3"
	zmq4 "github.com/pebbe/zmq4"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
)

// The bridge benchmarks (issue 5): the ZeroMQ bus into RabbitMQ (AMQP,
// publisher confirms) and ActiveMQ (STOMP, receipts) through the real
// `fedmsg bridge` process, each beside a raw client publishing straight
// to the same broker. A pair differs only in the publishing side: the
// consumer (a raw amqp091-go or go-stomp client in this process), the
// messages (609-byte envelopes, as in shared/notes/brokers.md) and the
// checks are the same. Every message is counted by its sequence number
// (none lost, none twice) and its body compared byte for byte.
//
//	go test -run '^$' -bench 'BenchmarkBridge' -benchtime 20000x .
//	ONLY=bridge-amqp,bridge-activemq,bridge-latency ./test/bench.sh
//
// msgs/s is end to end: from the first publish to the last arrival at the
// consumer. Each benchmark function runs once (b.Loop): one iteration
// publishes one message, and the timer is resumed after the loop until
// the last message has arrived, so ns/op is end to end too.
//
// The ZeroMQ source cannot redeliver, so the routes are at-most-once;
// the sinks still confirm (the bridge acks only after the confirm or
// receipt), and a loss fails the benchmark.
const (
	// bridgeBenchWindow bounds the messages sent but not yet received, so
	// that a time-based -benchtime does not queue minutes of messages in
	// ZeroMQ's buffers: 80 ms of the fastest path here (25k msgs/s), far
	// above a bridge route's batch (256) in flight.
	bridgeBenchWindow = 2000
	// rawConfirmWindow is how many publishes the raw AMQP publisher keeps
	// unconfirmed (see rawAMQP). The fastest in a sweep on these 2-core
	// machines (msgs/s, interleaved runs): 16: 6.7-7.2k, 32: 8.4-8.7k,
	// 64: 8.9-9.0k, 128: 8.6-10.2k, 256: 7.2-9.4k, 512: 6.8-8.1k,
	// 1000: 7.5-7.9k, 4000: 8.2-8.3k.
	rawConfirmWindow = 128
	// bridgeBenchPrefetch is the AMQP consumer's basic.qos, as in
	// transport/amqp's benchmarks.
	bridgeBenchPrefetch = 100
	// bridgeBenchStall fails a benchmark when no message arrived for this
	// long.
	bridgeBenchStall = 30 * time.Second

	// The latency benchmark paces latencyRate messages a second, in
	// blocks of latencyBlock messages (50 ms) alternately on the raw path
	// and through the bridge, so that both see the same machine: a stall
	// of the machine (these are shared and noisy) spans blocks of both.
	latencyRate  = 2000
	latencyBlock = 100
)

// Positions in benchEnvelope of what varies per message: the last 12 hex
// digits of msg_id hold the sequence number (the bridge suppresses
// repeated msg_ids, so each message needs its own), and the first 19
// characters of the "log" text the send time, in nanoseconds since
// benchEpoch (this process's monotonic clock: both ends of a measurement
// are in this process). The size stays 609 bytes.
var (
	benchSeqAt  = bytes.Index(benchEnvelope, []byte(`6dca3c1b7b60"`))
	benchTimeAt = bytes.Index(benchEnvelope, []byte(`"log":"`)) + len(`"log":"`)
	benchEpoch  = time.Now()
)

const (
	benchSeqLen  = 12
	benchTimeLen = 19
	// Probes (readiness checks and warm-up) are numbered from probeSeq;
	// the consumer counts them apart.
	probeSeq = uint64(1) << 44
)

// seqBody is benchEnvelope numbered seq, stamped with the current time.
func seqBody(seq uint64) []byte {
	body := bytes.Clone(benchEnvelope)
	const hexDigits = "0123456789abcdef"
	for i, s := benchSeqLen-1, seq; i >= 0; i, s = i-1, s>>4 {
		body[benchSeqAt+i] = hexDigits[s&15]
	}
	for i, t := benchTimeLen-1, uint64(time.Since(benchEpoch)); i >= 0; i, t = i-1, t/10 {
		body[benchTimeAt+i] = byte('0' + t%10)
	}
	return body
}

// seqID is the msg_id of body, a seqBody.
func seqID(body []byte) string {
	start := bytes.LastIndex(benchEnvelope[:benchSeqAt], []byte(`"msg_id":"`)) + len(`"msg_id":"`)
	return string(body[start : benchSeqAt+benchSeqLen])
}

// parseBody returns the sequence number and send time of a seqBody, and
// an error if anything else in it differs from benchEnvelope.
func parseBody(body []byte) (seq uint64, sent time.Duration, err error) {
	if len(body) != len(benchEnvelope) {
		return 0, 0, fmt.Errorf("body of %d bytes, want %d: %.120q", len(body), len(benchEnvelope), body)
	}
	seq, err1 := strconv.ParseUint(string(body[benchSeqAt:benchSeqAt+benchSeqLen]), 16, 64)
	ns, err2 := strconv.ParseUint(string(body[benchTimeAt:benchTimeAt+benchTimeLen]), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("body changed on the way: %w: %q", err, body)
	}
	// Everything around the two fields is benchEnvelope's.
	a, b := min(benchSeqAt, benchTimeAt), max(benchSeqAt, benchTimeAt)
	la, lb := benchSeqLen, benchTimeLen
	if a == benchTimeAt {
		la, lb = benchTimeLen, benchSeqLen
	}
	if !bytes.Equal(body[:a], benchEnvelope[:a]) || !bytes.Equal(body[a+la:b], benchEnvelope[a+la:b]) ||
		!bytes.Equal(body[b+lb:], benchEnvelope[b+lb:]) {
		return 0, 0, fmt.Errorf("body changed on the way:\n got %s\nwant %s (but for msg_id and log)", body, benchEnvelope)
	}
	return seq, time.Duration(ns), nil
}

// arrivals is what a consumer received: every message once, by sequence
// number, with its latency. Consumer goroutines call add; the benchmark
// goroutine waits on it and fails the benchmark on any error.
type arrivals struct {
	got    atomic.Int64 // distinct messages (not probes) received
	probes atomic.Int64 // probes received
	// progress is signalled (without blocking) on a probe, an error, and
	// once got reaches wake: the benchmark goroutine is woken when what
	// it waits for has come, not for every message.
	progress chan struct{}
	wake     atomic.Int64

	mu      sync.Mutex
	seen    []bool          // by seq
	latency []time.Duration // by seq
	err     error           // the first problem
}

func newArrivals() *arrivals {
	a := &arrivals{progress: make(chan struct{}, 1)}
	a.wake.Store(math.MaxInt64)
	return a
}

func (a *arrivals) signal() {
	select {
	case a.progress <- struct{}{}:
	default:
	}
}

func (a *arrivals) add(body []byte) {
	now := time.Since(benchEpoch)
	seq, sent, err := parseBody(body)
	a.mu.Lock()
	switch {
	case err != nil:
		a.failLocked(err)
	case seq >= probeSeq:
		a.mu.Unlock()
		a.probes.Add(1)
		a.signal()
		return
	case seq > 1<<32:
		a.failLocked(fmt.Errorf("unexpected sequence number %d", seq))
	default:
		if int(seq) >= len(a.seen) {
			n := max(int(seq)+1, 2*len(a.seen))
			a.seen = slices.Grow(a.seen, n-len(a.seen))[:n]
			a.latency = slices.Grow(a.latency, n-len(a.latency))[:n]
		}
		if a.seen[seq] {
			a.failLocked(fmt.Errorf("message %d received twice", seq))
			break
		}
		a.seen[seq], a.latency[seq] = true, now-sent
		a.mu.Unlock()
		if a.got.Add(1) >= a.wake.Load() {
			a.signal()
		}
		return
	}
	a.mu.Unlock()
	a.signal()
}

func (a *arrivals) fail(err error) {
	a.mu.Lock()
	a.failLocked(err)
	a.mu.Unlock()
	a.signal()
}

func (a *arrivals) failLocked(err error) {
	if a.err == nil {
		a.err = err
	}
}

func (a *arrivals) check(b *testing.B) {
	b.Helper()
	a.mu.Lock()
	err := a.err
	a.mu.Unlock()
	if err != nil {
		b.Fatal(err)
	}
}

// waitFor waits until target messages have arrived, failing b on a
// consumer error or when none arrived for bridgeBenchStall. what
// describes the wait in the failure.
func (a *arrivals) waitFor(b *testing.B, target int64, what func() string) {
	b.Helper()
	a.wake.Store(target)
	defer a.wake.Store(math.MaxInt64)
	tick := time.NewTicker(bridgeBenchStall)
	defer tick.Stop()
	last := a.got.Load()
	for {
		a.check(b)
		if a.got.Load() >= target {
			return
		}
		select {
		case <-a.progress:
		case <-tick.C:
			if a.got.Load() == last {
				b.Fatalf("nothing arrived for %v: %s", bridgeBenchStall, what())
			}
			last = a.got.Load()
		}
	}
}

// await waits until messages 0..n-1 have all arrived.
func (a *arrivals) await(b *testing.B, n uint64) {
	b.Helper()
	a.waitFor(b, int64(n), func() string { return fmt.Sprintf("received %d of %d messages", a.got.Load(), n) })
	a.check(b)
}

// window holds the publisher back once sent messages exceed those
// received by bridgeBenchWindow, until half of those have arrived.
func (a *arrivals) window(b *testing.B, sent uint64) {
	if int64(sent)-a.got.Load() < bridgeBenchWindow {
		return
	}
	b.Helper()
	a.waitFor(b, int64(sent)-bridgeBenchWindow/2,
		func() string { return fmt.Sprintf("received %d of %d messages", a.got.Load(), sent) })
}

// latencies returns the latencies of messages from..to-1.
func (a *arrivals) latencies(from, to uint64) []time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.latency[from:to])
}

// settle sends probes with send until one arrives (the path is up), then
// waits until the probes still on the way have arrived.
func (a *arrivals) settle(b *testing.B, send func(seq uint64), why func() string) {
	b.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for seq := probeSeq; a.probes.Load() == 0; seq++ {
		a.check(b)
		if time.Now().After(deadline) {
			b.Fatalf("no probe arrived in 20s: %s", why())
		}
		send(seq)
		time.Sleep(20 * time.Millisecond)
	}
	for quiet := false; !quiet; {
		select {
		case <-a.progress:
		case <-time.After(300 * time.Millisecond):
			quiet = true
		}
	}
	a.check(b)
}

// measureThroughput publishes b.Loop's iterations with send, numbered
// from 0, and reports msgs/s once all have arrived; finish (when not nil)
// waits for what the publisher still awaits (confirms). With a bridge,
// it also reports the bridge process's CPU time per message and how many
// cores it kept busy.
func measureThroughput(b *testing.B, a *arrivals, send func(seq uint64), finish func(), bridge *bridgeProc) {
	b.SetBytes(int64(len(benchEnvelope)))
	var n uint64
	var cpuBefore time.Duration
	if bridge != nil {
		cpuBefore = processCPU(b, bridge.cmd.Process.Pid)
	}
	start := time.Now()
	for b.Loop() {
		a.window(b, n)
		send(n)
		n++
	}
	b.StartTimer() // b.Loop stopped it: the time until the last arrival counts
	a.await(b, n)
	if finish != nil {
		finish()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
	if bridge != nil {
		cpu := processCPU(b, bridge.cmd.Process.Pid) - cpuBefore
		b.ReportMetric(float64(cpu.Microseconds())/float64(n), "bridge-cpu-us/msg")
		b.ReportMetric(cpu.Seconds()/elapsed.Seconds(), "bridge-cores")
	}
	// A message delivered twice after the last one counted would be
	// missed: give it a moment.
	time.Sleep(100 * time.Millisecond)
	a.check(b)
}

// benchTopic is a topic of this run only, so nothing else reaches the
// consumer.
func benchTopic() string {
	return fmt.Sprintf("org.fedoraproject.dev.bench%08x.logger.log", rand.Uint32())
}

const benchAMQPURL = "amqp://guest:guest@127.0.0.1:5672/"

// amqpChannel opens a channel on a connection of its own to RabbitMQ,
// closed when b ends.
func amqpChannel(b *testing.B) *amqp091.Channel {
	b.Helper()
	conn, err := amqp091.Dial(benchAMQPURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	return ch
}

// amqpConsumer consumes topic from amq.topic on RabbitMQ with amqp091-go:
// an exclusive queue, manual acks, prefetch bridgeBenchPrefetch.
func amqpConsumer(b *testing.B, topic string) *arrivals {
	b.Helper()
	ch := amqpChannel(b)
	if err := ch.Qos(bridgeBenchPrefetch, 0, false); err != nil {
		b.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, topic, "amq.topic", false, nil); err != nil {
		b.Fatal(err)
	}
	deliveries, err := ch.Consume(q.Name, "", false, true, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	a := newArrivals()
	go func() {
		for d := range deliveries {
			if d.RoutingKey != topic {
				a.fail(fmt.Errorf("routing key %q, want %q", d.RoutingKey, topic))
			}
			a.add(d.Body)
			if err := d.Ack(false); err != nil {
				a.fail(fmt.Errorf("consumer ack: %w", err))
			}
		}
	}()
	return a
}

func stompDial(b *testing.B, broker brokertest.Broker) *gostomp.Conn {
	b.Helper()
	c, err := gostomp.Dial("tcp", broker.Addr, gostomp.ConnOpt.Host("/"), gostomp.ConnOpt.Login("guest", "guest"), gostomp.ConnOpt.Logger(brokertest.QuietSTOMP{}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Disconnect() })
	return c
}

// stompConsumer subscribes to /topic/<topic> with go-stomp (auto ack).
func stompConsumer(b *testing.B, broker brokertest.Broker, topic string) *arrivals {
	b.Helper()
	sub, err := stompDial(b, broker).Subscribe("/topic/"+topic, gostomp.AckAuto)
	if err != nil {
		b.Fatal(err)
	}
	a := newArrivals()
	var done atomic.Bool
	b.Cleanup(func() { done.Store(true); _ = sub.Unsubscribe() }) // before Disconnect, or go-stomp logs an error
	go func() {
		for m := range sub.C {
			if m.Err != nil {
				if !done.Load() {
					a.fail(fmt.Errorf("stomp subscription: %w", m.Err))
				}
				return
			}
			a.add(m.Body)
		}
	}()
	return a
}

// rawAMQP is the baseline AMQP publisher: amqp091-go alone with publisher
// confirms, asynchronous: it publishes on while the confirms come back
// (amqp091-go settles each DeferredConfirmation as its confirm arrives),
// and when rawConfirmWindow publishes are unconfirmed it waits for the
// older half of them, so that it is not woken for every confirm.
type rawAMQP struct {
	ch      *amqp091.Channel
	topic   string
	pending []*amqp091.DeferredConfirmation // unconfirmed, oldest first
}

func newRawAMQP(b *testing.B, topic string) *rawAMQP {
	b.Helper()
	ch := amqpChannel(b)
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	return &rawAMQP{ch: ch, topic: topic, pending: make([]*amqp091.DeferredConfirmation, 0, rawConfirmWindow)}
}

// send publishes one message.
func (r *rawAMQP) send(b *testing.B, seq uint64) {
	if len(r.pending) == rawConfirmWindow {
		r.confirm(b, rawConfirmWindow/2)
	}
	body := seqBody(seq)
	dc, err := r.ch.PublishWithDeferredConfirm("amq.topic", r.topic, false, false, amqp091.Publishing{
		ContentType: "application/json", DeliveryMode: amqp091.Persistent, MessageId: seqID(body), Body: body,
	})
	if err != nil {
		b.Fatal(err)
	}
	r.pending = append(r.pending, dc)
}

// confirm waits for the oldest n unconfirmed publishes, failing b if the
// broker refused one.
func (r *rawAMQP) confirm(b *testing.B, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), bridgeBenchStall)
	defer cancel()
	for _, dc := range r.pending[:n] {
		ack, err := dc.WaitContext(ctx)
		if err != nil {
			b.Fatalf("raw AMQP: publish %d unconfirmed after %v", dc.DeliveryTag, bridgeBenchStall)
		}
		if !ack {
			b.Fatalf("raw AMQP: publish %d nacked by the broker", dc.DeliveryTag)
		}
	}
	r.pending = r.pending[:copy(r.pending, r.pending[n:])]
}

// confirmed waits until every publish is confirmed.
func (r *rawAMQP) confirmed(b *testing.B) { r.confirm(b, len(r.pending)) }

// rawSTOMPSender is the baseline STOMP publisher: go-stomp alone, each
// SEND persistent with a receipt, as the STOMP transport sends (go-stomp
// awaits each receipt before the next send).
func rawSTOMPSender(b *testing.B, broker brokertest.Broker, topic string) func(seq uint64) {
	b.Helper()
	conn := stompDial(b, broker)
	return func(seq uint64) {
		if err := conn.Send("/topic/"+topic, "application/json", seqBody(seq),
			gostomp.SendOpt.Receipt, gostomp.SendOpt.Header("persistent", "true")); err != nil {
			b.Fatal(err)
		}
	}
}

// zmqSender binds a PUB socket the bridge subscribes to and returns its
// address and a sender of numbered messages on topic.
func zmqSender(b *testing.B, topic string) (addr string, send func(seq uint64)) {
	b.Helper()
	zctx, err := zmq4.NewContext()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { zctx.Term() })
	pub, err := zctx.NewSocket(zmq4.PUB)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pub.Close() })
	pub.SetLinger(0)
	pub.SetSndhwm(0)
	addr = freeTCP(b)
	if err := pub.Bind(addr); err != nil {
		b.Fatal(err)
	}
	t := []byte(topic)
	return addr, func(seq uint64) {
		if _, err := pub.SendBytes(t, zmq4.SNDMORE); err != nil {
			b.Fatal(err)
		}
		if _, err := pub.SendBytes(seqBody(seq), 0); err != nil {
			b.Fatal(err)
		}
	}
}

// lockedBuffer collects a process's stderr while the benchmark reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// bridgeProc is a running `fedmsg bridge`.
type bridgeProc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	exited chan struct{} // closed when it has exited; err is then set
	err    error
}

// String is the bridge's state and log, for failure messages.
func (p *bridgeProc) String() string {
	select {
	case <-p.exited:
		return fmt.Sprintf("the bridge exited (%v); its stderr:\n%s", p.err, p.stderr)
	default:
		return "the bridge's stderr so far:\n" + p.stderr.String()
	}
}

var routeStopped = regexp.MustCompile(`msg="route stopped" route=bench received=(\d+) forwarded=(\d+) dropped=(\d+)`)

// startBridge runs `fedmsg bridge` as its own process (as in production,
// so this harness's goroutines do not take its cores) with one route,
// bench: from a zmq transport subscribed to pubAddr to the sink
// transport, given as a YAML flow mapping. It is stopped (SIGTERM) at
// the end of the benchmark, and must then exit 0 having dropped nothing.
func startBridge(b *testing.B, pubAddr, sink string) *bridgeProc {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "fedmsg")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/fedmsg").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	// A zmq transport subscribes to every endpoints entry (but
	// relay_inbound): replacing relay_outbound leaves only pubAddr.
	cfg := filepath.Join(dir, "bridge.yaml")
	yaml := fmt.Sprintf(`high_water_mark: 0
%stransports:
  bus: {kind: zmq, endpoints: {relay_outbound: [%s]}}
  sink: %s
routes:
  - {name: bench, from: bus, to: sink}
`, bridgeSection(), pubAddr, sink)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		b.Fatal(err)
	}
	p := &bridgeProc{cmd: exec.Command(bin, "bridge", "--config", cfg), stderr: &lockedBuffer{}, exited: make(chan struct{})}
	// Its own HOME and working directory: no ~/.fedmsg.d or ./fedmsg.d.
	p.cmd.Dir, p.cmd.Env = dir, []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	// BRIDGE_GOGC and BRIDGE_GOMAXPROCS tune the bridge process, to compare.
	for _, v := range []string{"GOGC", "GOMAXPROCS"} {
		if x := os.Getenv("BRIDGE_" + v); x != "" {
			p.cmd.Env = append(p.cmd.Env, v+"="+x)
		}
	}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	b.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
			b.Errorf("the bridge did not stop within 20s of SIGTERM; %s", p)
			return
		}
		if p.err != nil {
			b.Errorf("%s", p)
			return
		}
		m := routeStopped.FindStringSubmatch(p.stderr.String())
		switch {
		case m == nil:
			b.Errorf("the bridge did not log its route's counts; %s", p)
		case m[3] != "0":
			b.Errorf("the bridge dropped %s messages; %s", m[3], p)
		}
	})
	return p
}

// bridgeSection is the bridge: section of the benchmark's configuration:
// BRIDGE_MAX_BATCH sets max_batch, to compare.
func bridgeSection() string {
	if v := os.Getenv("BRIDGE_MAX_BATCH"); v != "" {
		return "bridge: {max_batch: " + v + "}\n"
	}
	return ""
}

func (p *bridgeProc) checkRunning(b *testing.B) {
	b.Helper()
	select {
	case <-p.exited:
		b.Fatalf("%s", p)
	default:
	}
}

// BenchmarkBridgeAMQP: ZeroMQ PUB -> `fedmsg bridge` (zmq -> amqp,
// publisher confirms) -> RabbitMQ amq.topic -> raw amqp091-go consumer.
func BenchmarkBridgeAMQP(b *testing.B) {
	brokertest.Use(b, brokertest.RabbitAMQP)
	topic := benchTopic()
	a := amqpConsumer(b, topic)
	addr, send := zmqSender(b, topic)
	bridge := startBridge(b, addr, fmt.Sprintf("{kind: amqp, amqp_url: [%q]}", benchAMQPURL))
	a.settle(b, func(seq uint64) { bridge.checkRunning(b); send(seq) }, bridge.String)
	measureThroughput(b, a, send, func() { bridge.checkRunning(b) }, bridge)
}

// BenchmarkBridgeRawAMQP is BenchmarkBridgeAMQP's baseline: the same
// consumer fed by rawAMQP, an amqp091-go async-confirm publisher.
func BenchmarkBridgeRawAMQP(b *testing.B) {
	brokertest.Use(b, brokertest.RabbitAMQP)
	topic := benchTopic()
	a := amqpConsumer(b, topic)
	raw := newRawAMQP(b, topic)
	send := func(seq uint64) { raw.send(b, seq) }
	a.settle(b, send, func() string { return "raw AMQP publisher" })
	measureThroughput(b, a, send, func() { raw.confirmed(b) }, nil)
}

// BenchmarkBridgeActiveMQ: ZeroMQ PUB -> `fedmsg bridge` (zmq -> stomp,
// receipts) -> ActiveMQ /topic -> raw go-stomp subscriber.
func BenchmarkBridgeActiveMQ(b *testing.B) {
	brokertest.Use(b, brokertest.ActiveMQSTOMP)
	topic := benchTopic()
	a := stompConsumer(b, brokertest.ActiveMQSTOMP, topic)
	addr, send := zmqSender(b, topic)
	bridge := startBridge(b, addr, fmt.Sprintf("{kind: stomp, stomp_uri: %q}", brokertest.ActiveMQSTOMP.Addr))
	a.settle(b, func(seq uint64) { bridge.checkRunning(b); send(seq) }, bridge.String)
	measureThroughput(b, a, send, func() { bridge.checkRunning(b) }, bridge)
}

// BenchmarkBridgeRawActiveMQ is BenchmarkBridgeActiveMQ's baseline: the
// same subscriber fed by go-stomp alone (persistent, with receipts).
func BenchmarkBridgeRawActiveMQ(b *testing.B) {
	brokertest.Use(b, brokertest.ActiveMQSTOMP)
	topic := benchTopic()
	a := stompConsumer(b, brokertest.ActiveMQSTOMP, topic)
	send := rawSTOMPSender(b, brokertest.ActiveMQSTOMP, topic)
	a.settle(b, send, func() string { return "raw go-stomp publisher" })
	measureThroughput(b, a, send, nil, nil)
}

// BenchmarkBridgeLatency paces latencyRate messages a second to one raw
// amqp091-go consumer, alternately in blocks of latencyBlock through the
// raw path (rawAMQP -> RabbitMQ) and the bridge path (ZeroMQ PUB ->
// `fedmsg bridge` -> RabbitMQ), one b.Loop iteration a message, and
// reports the p50 and p99 latency of each path and the p99 the bridge
// adds. A latency is from just before the publish call to the consumer's
// receipt, both in this process. Run at least 2*latencyBlock iterations:
//
//	go test -run '^$' -bench BridgeLatency -benchtime 10000x .
func BenchmarkBridgeLatency(b *testing.B) {
	brokertest.Use(b, brokertest.RabbitAMQP)
	topic := benchTopic()
	a := amqpConsumer(b, topic)
	raw := newRawAMQP(b, topic)
	addr, zsend := zmqSender(b, topic)
	bridge := startBridge(b, addr, fmt.Sprintf("{kind: amqp, amqp_url: [%q]}", benchAMQPURL))
	rsend := func(seq uint64) { raw.send(b, seq) }
	a.settle(b, func(seq uint64) { bridge.checkRunning(b); zsend(seq) }, bridge.String)
	a.settle(b, rsend, func() string { return "raw AMQP publisher" })
	// Paced: message i goes at start + i/latencyRate, on the path of its
	// block. Go's timers here wake about once a millisecond, so messages
	// leave in small bursts (mostly two) at the average rate; each is
	// timed from its actual send.
	interval := time.Second / latencyRate
	var next time.Time
	pace := func(i, seq uint64) {
		time.Sleep(time.Until(next))
		if i/latencyBlock%2 == 0 {
			rsend(seq)
		} else {
			zsend(seq)
		}
		next = next.Add(interval)
	}
	// Warm-up, not measured (numbered as probes): a second of the same.
	next = time.Now()
	for i := range uint64(latencyRate) {
		pace(i, probeSeq+1<<20+i)
	}

	var n uint64
	next = time.Now()
	for b.Loop() {
		pace(n, n)
		n++
	}
	if n < 2*latencyBlock {
		b.Fatalf("ran %d messages: run at least %d (-benchtime %dx), a block on each path", n, 2*latencyBlock, 2*latencyBlock)
	}
	a.await(b, n)
	raw.confirmed(b)
	bridge.checkRunning(b)
	var rawLat, bridgeLat []time.Duration
	for from := uint64(0); from < n; from += latencyBlock {
		lat := a.latencies(from, min(from+latencyBlock, n))
		if from/latencyBlock%2 == 0 {
			rawLat = append(rawLat, lat...)
		} else {
			bridgeLat = append(bridgeLat, lat...)
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	rawP99, bridgeP99 := percentile(rawLat, 0.99), percentile(bridgeLat, 0.99)
	b.ReportMetric(ms(percentile(rawLat, 0.50)), "raw-p50-ms")
	b.ReportMetric(ms(rawP99), "raw-p99-ms")
	b.ReportMetric(ms(percentile(bridgeLat, 0.50)), "bridge-p50-ms")
	b.ReportMetric(ms(bridgeP99), "bridge-p99-ms")
	b.ReportMetric(ms(bridgeP99-rawP99), "p99-added-ms")
}

// percentile is the nearest-rank q-quantile of ds (which it sorts).
func percentile(ds []time.Duration, q float64) time.Duration {
	slices.Sort(ds)
	i := int(float64(len(ds))*q+0.999999) - 1
	return ds[max(0, min(i, len(ds)-1))]
}
