package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	gostomp "github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
	"github.com/gofedmsg/fedmsg/transport/stomp"
)

// SIGTERM mid-stream from an ActiveMQ durable topic subscription
// (stomp_durable_name): 5,000 persistent messages a plain STOMP client
// published to ActiveMQ topics while no subscriber was connected wait
// for the bridge's durable subscription; the bridge forwards them to an
// AMQP exchange on RabbitMQ, is stopped by SIGTERM while it does and
// started again. Every message reaches the sink at least once, byte for
// byte, and the first run exits 0 within the shutdown bound.
func TestSIGTERMMidStreamLosesNothingFromAnActiveMQDurableSubscription(t *testing.T) {
	const n = 5000
	brokertest.Use(t, brokertest.ActiveMQSTOMP)
	brokertest.Use(t, brokertest.RabbitAMQP)
	b := newBus(t)
	prefix, topic, bodies := shutdownStream(n)
	dstX := privateExchange(t)
	sink := amqpReceived(plainAMQPConsumerOn(t, rabbitURL(), dstX, "#"))

	// The durable subscription is made (by the transport the bridge
	// uses, so with the same destination and selector, which ActiveMQ
	// compares) and left before anything is sent: what follows is kept
	// for it while nobody is connected. It is removed at the end.
	name := fmt.Sprintf("gofedmsg-e2e-durable-%08x", rand.Uint32())
	brokertest.CleanupActiveMQDurable(t, name, name)
	makeDurable(t, name, prefix+".")

	conn, err := gostomp.Dial("tcp", brokertest.ActiveMQSTOMP.Addr)
	if err != nil {
		t.Fatalf("connecting to %s: %v", brokertest.ActiveMQSTOMP.Addr, err)
	}
	defer conn.Disconnect()
	sent := time.Now()
	for i, body := range bodies {
		opts := []func(*frame.Frame) error{gostomp.SendOpt.Header("persistent", "true")}
		if i == n-1 {
			// ActiveMQ handles a connection's frames in order: the last
			// receipt means every message before it is stored.
			opts = append(opts, gostomp.SendOpt.Receipt)
		}
		if err := conn.Send("/topic/"+topic, "application/json", body, opts...); err != nil {
			t.Fatalf("sending message %d: %v", i, err)
		}
	}
	t.Logf("sent %d persistent messages to ActiveMQ in %v", n, time.Since(sent).Round(time.Millisecond))

	sigtermMidStream(t, b, topic, bodies, midStreamRoute{
		cfg: fmt.Sprintf(`transports:
  src: {kind: stomp, stomp_uri: "%s", stomp_durable_name: "%s"}
  dst: {kind: amqp, amqp_url: [%s], amqp_exchange: %s}
routes:
  - {name: activemq-durable-to-exchange, from: src, to: dst, topics: ["%s."], delivery: at-least-once}
`, brokertest.ActiveMQSTOMP.Addr, name, rabbitURL(), dstX, prefix),
		// ActiveMQ does not tell a STOMP client how many messages a
		// durable subscription holds (no backlog): the loss check is the
		// second run's, in which every message must arrive.
		sink: sink,
	})
}

// makeDurable creates the durable subscription name (client-id and
// subscription name) on ActiveMQ with a gofedmsg STOMP transport, and
// leaves it: closing the transport keeps the subscription.
func makeDurable(t *testing.T, name, pattern string) {
	t.Helper()
	tr, err := stomp.New(stomp.Options{Addrs: []string{brokertest.ActiveMQSTOMP.Addr}, DurableName: name})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := tr.Subscribe(ctx, pattern); err != nil {
		t.Fatalf("making durable subscription %s: %v", name, err)
	}
	if !tr.Connected() {
		t.Fatalf("making durable subscription %s: not connected: %v", name, tr.LastError())
	}
	if err := tr.Close(ctx); err != nil {
		t.Fatalf("closing: %v", err)
	}
}

// Only the hub takes stomp_durable_name from the shared configuration:
// while the hub holds the ActiveMQ client-id, `fedmsg logger` still
// publishes and `fedmsg tail` still shows what is published, as plain
// topic clients. Taking the name, they could not connect while the hub
// runs, and a tail run while it is down would ack the hub's backlog.
func TestOnlyTheHubTakesTheDurableName(t *testing.T) {
	brokertest.Use(t, brokertest.ActiveMQSTOMP)
	b := newBus(t)
	prefix := fmt.Sprintf("org.durable%d", time.Now().UnixNano())
	name := fmt.Sprintf("gofedmsg-e2e-hub-%08x", rand.Uint32())
	brokertest.CleanupActiveMQDurable(t, name, name)

	// The hub, connected with its durable subscription.
	hub, err := stomp.New(stomp.Options{Addrs: []string{brokertest.ActiveMQSTOMP.Addr}, DurableName: name})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := hub.Subscribe(ctx, prefix+"."); err != nil {
		t.Fatalf("the hub's durable subscription: %v", err)
	}
	t.Cleanup(func() { _ = hub.Close(context.Background()) }) // before the removal (last in, first out)

	cfg := writeConfig(t, b, "shared.yaml", fmt.Sprintf("zmq_enabled: false\nstomp_uri: %q\nstomp_durable_name: %q\ntopic_prefix: %s\n",
		brokertest.ActiveMQSTOMP.Addr, name, prefix))
	tail := b.start("tail", "--config", cfg, "--json")
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, errOut, code := b.run("", "logger", "--config", cfg, "--timeout", "5s", "--message", "while the hub runs")
		if code != 0 {
			t.Fatalf("logger exited %d while the hub held client-id %s: %s", code, name, errOut)
		}
		select {
		case l := <-tail.lines:
			if !strings.Contains(l, "while the hub runs") {
				t.Fatalf("tail printed %s", l)
			}
			return
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("tail showed nothing within 30s while the hub held client-id %s; tail stderr:\n%s", name, tail.stderr.String())
		}
	}
}
