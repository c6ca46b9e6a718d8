package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
)

// shutdownBound is the README's promise: a daemon exits within 30 s of
// SIGTERM or SIGINT (the drain, then closing the transports).
const shutdownBound = 30 * time.Second

// durableQueue declares a durable queue bound to exchange by key (as the
// amqp transport declares amqp_queue), deleted when t ends. Declared by
// the test, before anything is published, so nothing is routed nowhere
// while no bridge runs.
func durableQueue(t *testing.T, exchange, key string) (name string, ch *amqp.Channel) {
	t.Helper()
	ch = plainAMQPChannel(t, rabbitURL())
	name = fmt.Sprintf("gofedmsg.e2e.shutdown.%d", time.Now().UnixNano())
	if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(name, key, exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := ch.QueueDelete(name, false, false, false); err != nil {
			t.Logf("deleting queue %s: %v", name, err)
		}
	})
	return name, ch
}

// publishConfirmed publishes every body to exchange and returns once the
// broker confirmed each: they are all in the queue before the bridge runs.
func publishConfirmed(t *testing.T, exchange, topic string, bodies [][]byte) {
	t.Helper()
	ch := plainAMQPChannel(t, rabbitURL())
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, len(bodies)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, b := range bodies {
		err := ch.PublishWithContext(ctx, exchange, topic, false, false,
			amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: b})
		if err != nil {
			t.Fatal(err)
		}
	}
	for range bodies {
		select {
		case c := <-confirms:
			if !c.Ack {
				t.Fatalf("the broker refused message %d", c.DeliveryTag)
			}
		case <-ctx.Done():
			t.Fatal("the broker did not confirm every message within a minute")
		}
	}
}

// SIGTERM in the middle of a stream on an at-least-once route loses
// nothing: RabbitMQ queue -> bridge -> another RabbitMQ exchange, 5,000
// messages waiting in the source queue, the bridge stopped by SIGTERM
// while it forwards them and started again. Every message reaches the
// sink at least once (duplicates are allowed, and counted), and the first
// run exits 0 within the shutdown bound.
func TestSIGTERMMidStreamLosesNothingOnAnAtLeastOnceRoute(t *testing.T) {
	const n = 5000
	brokertest.Use(t, brokertest.RabbitAMQP)
	b := newBus(t)
	prefix, topic, bodies := shutdownStream(n)
	srcX, dstX := privateExchange(t), privateExchange(t)
	queue, qch := durableQueue(t, srcX, prefix+".#")
	sink := amqpReceived(plainAMQPConsumerOn(t, rabbitURL(), dstX, "#"))

	publishConfirmed(t, srcX, topic, bodies)

	sigtermMidStream(t, b, topic, bodies, midStreamRoute{
		cfg: fmt.Sprintf(`transports:
  src: {kind: amqp, amqp_url: [%s], amqp_exchange: %s, amqp_queue: %s, amqp_prefetch: 1000}
  dst: {kind: amqp, amqp_url: [%s], amqp_exchange: %s}
routes:
  - {name: queue-to-exchange, from: src, to: dst, topics: ["%s."], delivery: at-least-once}
`, rabbitURL(), srcX, queue, rabbitURL(), dstX, prefix),
		sink:    sink,
		backlog: queueBacklog(t, qch, queue),
	})
}

// midStreamRoute is one at-least-once route for sigtermMidStream.
type midStreamRoute struct {
	cfg     string          // the bridge's YAML
	sink    <-chan received // what a plain client of the sink receives
	backlog func() int      // messages now waiting in the source queue; nil when the broker cannot tell
}

// sigtermMidStream starts a bridge on r while every body (each with a
// distinct msg_id, all on topic) waits in the source queue, sends it
// SIGTERM once a tenth of them reached the sink, starts it again,
// and checks that every body reached the sink at least once, byte for
// byte and on its topic, and that the first run exited 0 within the
// shutdown bound.
func sigtermMidStream(t *testing.T, b *bus, topic string, bodies [][]byte, r midStreamRoute) {
	t.Helper()
	n := len(bodies)
	want := make(map[string][]byte, n)
	ids := make([]string, n)
	for i, body := range bodies {
		var env struct {
			MsgID string `json:"msg_id"`
		}
		if err := json.Unmarshal(body, &env); err != nil || env.MsgID == "" {
			t.Fatalf("test body %d has no msg_id: %s", i, body)
		}
		want[env.MsgID], ids[i] = body, env.MsgID
	}
	cfgPath := writeConfig(t, b, "bridge.yaml", r.cfg)

	seen := make(map[string]int, n)
	receive := func(m received, open bool) {
		if !open {
			t.Fatal("the plain client of the sink lost its connection")
		}
		var env struct {
			MsgID string `json:"msg_id"`
		}
		_ = json.Unmarshal(m.body, &env)
		w, ok := want[env.MsgID]
		if !ok {
			t.Fatalf("the sink got a message that was never sent (topic %q): %.200s", m.topic, m.body)
		}
		if !bytes.Equal(m.body, w) {
			t.Fatalf("message %s changed on the way:\n got %s\nwant %s", env.MsgID, m.body, w)
		}
		if m.topic != topic {
			t.Fatalf("message %s arrived on topic %q, want %q", env.MsgID, m.topic, topic)
		}
		seen[env.MsgID]++
	}
	// drain reads the sink until it has been quiet for a second.
	drain := func() {
		for {
			select {
			case m, ok := <-r.sink:
				receive(m, ok)
			case <-time.After(time.Second):
				return
			}
		}
	}

	// First run: SIGTERM once a tenth of the messages reached the sink.
	// The stream is then in full flow, batches in flight at both ends
	// (the first message alone may come before the source has pushed
	// more), and most of it still to come.
	first := b.start("bridge", "--config", cfgPath)
	running := time.After(30 * time.Second)
	for len(seen) < n/10 {
		select {
		case m, ok := <-r.sink:
			receive(m, ok)
		case <-running:
			t.Fatalf("%d of %d messages reached the sink within 30s; bridge stderr:\n%s", len(seen), n, first.stderr.String())
		}
	}
	atSIGTERM := len(seen)
	start := time.Now()
	code := first.stopWithin(t, syscall.SIGTERM, shutdownBound+5*time.Second)
	took := time.Since(start)
	if code != 0 {
		t.Errorf("the bridge exited %d on SIGTERM, want 0; stderr:\n%s", code, first.stderr.String())
	}
	if took > shutdownBound {
		t.Errorf("the bridge took %v to exit after SIGTERM, more than the %v bound", took, shutdownBound)
	}
	if !strings.Contains(first.stderr.String(), "draining in-flight messages") {
		t.Errorf("the bridge did not say it was draining; stderr:\n%s", first.stderr.String())
	}
	drain()
	afterFirst := len(seen)
	t.Logf("first run: SIGTERM at %d received, exited %d after %v, %d distinct messages at the sink",
		atSIGTERM, code, took.Round(time.Millisecond), afterFirst)
	if afterFirst >= n {
		t.Fatalf("the bridge forwarded all %d messages before SIGTERM took effect: the stream was not interrupted, nothing tested", n)
	}
	if r.backlog != nil {
		left := r.backlog()
		t.Logf("%d left in the source queue", left)
		if afterFirst+left < n {
			t.Fatalf("after the first run: %d at the sink + %d in the source queue < %d sent: messages lost (acked without reaching the sink)", afterFirst, left, n)
		}
	}

	// Second run: everything else arrives.
	restarted := time.Now()
	second := b.start("bridge", "--config", cfgPath)
	deadline := time.After(60 * time.Second)
	for len(seen) < n {
		select {
		case m, ok := <-r.sink:
			receive(m, ok)
		case <-deadline:
			t.Fatalf("after the restart only %d of %d messages reached the sink within 60s; bridge stderr:\n%s", len(seen), n, second.stderr.String())
		}
	}
	restTook := time.Since(restarted)
	drain() // copies still on their way
	dups := 0
	for i, id := range ids {
		c := seen[id]
		if c == 0 {
			t.Errorf("message %d (%s) never reached the sink", i, id)
		}
		dups += max(c-1, 0)
	}
	t.Logf("all %d messages arrived (the last %d within %v of the restart); %d duplicates (redelivered after the SIGTERM)",
		n, n-afterFirst, restTook.Round(time.Millisecond), dups)
	if code := second.stopWithin(t, syscall.SIGINT, shutdownBound+5*time.Second); code != 0 {
		t.Errorf("the restarted bridge exited %d on SIGINT, want 0; stderr:\n%s", code, second.stderr.String())
	}
}

// shutdownStream returns a topic prefix of the test's own, a topic under
// it and n envelopes on that topic, msg_ids <prefix>-00000...
func shutdownStream(n int) (prefix, topic string, bodies [][]byte) {
	prefix = fmt.Sprintf("org.shutdown%d", time.Now().UnixNano())
	topic = prefix + ".dev.shutdown.m"
	bodies = make([][]byte, n)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, `{"msg":{"n":%d},"msg_id":"%s-%05d","topic":"%s"}`, i, prefix, i, topic)
	}
	return prefix, topic, bodies
}

// queueBacklog returns how many messages queue holds now.
func queueBacklog(t *testing.T, ch *amqp.Channel, queue string) func() int {
	return func() int {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			t.Fatalf("counting the messages in queue %s: %v", queue, err)
		}
		return q.Messages
	}
}

// amqpReceived turns deliveries into received (routing key and body).
func amqpReceived(ds <-chan amqp.Delivery) <-chan received {
	out := make(chan received, 1024)
	go func() {
		defer close(out)
		for d := range ds {
			out <- received{d.RoutingKey, d.Body}
		}
	}()
	return out
}

// stopWithin sends sig and returns the exit code, failing the test when
// the process is still running after d.
func (p *proc) stopWithin(t testing.TB, sig syscall.Signal, d time.Duration) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-done
		t.Fatalf("%v did not exit within %v of %v", p.cmd.Args, d, sig)
	}
	return p.cmd.ProcessState.ExitCode()
}
