package test

import (
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
	prefix := fmt.Sprintf("org.shutdown%d", time.Now().UnixNano())
	srcX, dstX := privateExchange(t), privateExchange(t)
	queue, qch := durableQueue(t, srcX, prefix+".#")
	sink := plainAMQPConsumerOn(t, rabbitURL(), dstX, "#")

	topic := prefix + ".dev.shutdown.m"
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, `{"msg":{"n":%d},"msg_id":"%s-%05d","topic":"%s"}`, i, prefix, i, topic)
	}
	publishConfirmed(t, srcX, topic, bodies)

	cfgPath := writeConfig(t, b, "bridge.yaml", fmt.Sprintf(`transports:
  src: {kind: amqp, amqp_url: [%s], amqp_exchange: %s, amqp_queue: %s, amqp_prefetch: 1000}
  dst: {kind: amqp, amqp_url: [%s], amqp_exchange: %s}
routes:
  - {name: queue-to-exchange, from: src, to: dst, topics: ["%s."], delivery: at-least-once}
`, rabbitURL(), srcX, queue, rabbitURL(), dstX, prefix))

	seen := make(map[string]int, n)
	receive := func(d amqp.Delivery) {
		var env struct {
			MsgID string `json:"msg_id"`
		}
		if err := json.Unmarshal(d.Body, &env); err != nil || !strings.HasPrefix(env.MsgID, prefix+"-") {
			t.Fatalf("the sink got a message that was never sent: %.200s", d.Body)
		}
		seen[env.MsgID]++
	}

	// First run: SIGTERM as soon as the first message reaches the sink.
	first := b.start("bridge", "--config", cfgPath)
	select {
	case d := <-sink:
		receive(d)
	case <-time.After(30 * time.Second):
		t.Fatalf("nothing reached the sink within 30s; bridge stderr:\n%s", first.stderr.String())
	}
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
	// What the first run forwarded, and what it left in the queue.
	for drained := false; !drained; {
		select {
		case d := <-sink:
			receive(d)
		case <-time.After(time.Second):
			drained = true
		}
	}
	afterFirst := len(seen)
	q, err := qch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first run: exited %d after %v, %d distinct messages at the sink, %d left in the queue", code, took.Round(time.Millisecond), afterFirst, q.Messages)
	if afterFirst >= n {
		t.Fatalf("the bridge forwarded all %d messages before SIGTERM took effect: the stream was not interrupted, nothing tested", n)
	}
	if afterFirst+q.Messages < n {
		t.Fatalf("after the first run: %d at the sink + %d in the queue < %d sent: messages lost (acked without reaching the sink)", afterFirst, q.Messages, n)
	}

	// Second run: everything else arrives.
	second := b.start("bridge", "--config", cfgPath)
	deadline := time.After(60 * time.Second)
	for len(seen) < n {
		select {
		case d := <-sink:
			receive(d)
		case <-deadline:
			t.Fatalf("after the restart only %d of %d messages reached the sink within 60s; bridge stderr:\n%s", len(seen), n, second.stderr.String())
		}
	}
	// Copies still on their way.
	for quiet := false; !quiet; {
		select {
		case d := <-sink:
			receive(d)
		case <-time.After(time.Second):
			quiet = true
		}
	}
	dups := 0
	for i := range n {
		c := seen[fmt.Sprintf("%s-%05d", prefix, i)]
		if c == 0 {
			t.Errorf("message %d never reached the sink", i)
		}
		dups += max(c-1, 0)
	}
	t.Logf("all %d messages arrived; %d duplicates (redelivered after the SIGTERM)", n, dups)
	if code := second.stopWithin(t, syscall.SIGINT, shutdownBound+5*time.Second); code != 0 {
		t.Errorf("the restarted bridge exited %d on SIGINT, want 0; stderr:\n%s", code, second.stderr.String())
	}
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
