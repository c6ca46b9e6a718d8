package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
	"github.com/gofedmsg/fedmsg/message"
)

// The ZeroMQ bus into RabbitMQ through `fedmsg bridge`, across processes:
// logger -> relay -> bridge -> AMQP, read by a plain amqp091-go consumer.
// Every message arrives, in order, as the canonical envelope the logger
// published.
func TestBridgeCarriesTheBusIntoAMQP(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQP)
	b := newBus(t)
	prefix := fmt.Sprintf("org.bridge%d", time.Now().UnixNano())
	b.env = append(b.env, "FEDMSG_TOPIC_PREFIX="+prefix)
	url := "amqp://guest:guest@" + brokertest.RabbitAMQP.Addr + "/"
	cfgPath := filepath.Join(b.dir, "bridge.yaml")
	cfg := fmt.Sprintf(`transports:
  bus: {kind: zmq}
  rabbit: {kind: amqp, amqp_url: [%s]}
routes:
  - {name: bus-to-rabbit, from: bus, to: rabbit, topics: ["%s."]}
`, url, prefix)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	deliveries := plainAMQPConsumer(t, url, prefix+".#")

	b.startRelay()
	bridge := b.start("bridge", "--config", cfgPath)
	bridge.waitStderr(t, "bus-to-rabbit")

	// The bridge's subscription to the relay settles asynchronously:
	// probe until one comes through.
	deadline := time.Now().Add(30 * time.Second)
	for settled := false; !settled; {
		if _, errOut, code := b.run("", "logger", "--modname", "e2e", "--topic", "probe", "--message", "probe"); code != 0 {
			t.Fatalf("probe logger exited %d: %s", code, errOut)
		}
		select {
		case <-deliveries:
			settled = true
		case <-time.After(300 * time.Millisecond):
		}
		if !settled && time.Now().After(deadline) {
			t.Fatalf("no probe crossed the bridge within 30s; bridge stderr:\n%s", bridge.stderr.String())
		}
	}
	for drained := false; !drained; {
		select {
		case <-deliveries:
		case <-time.After(500 * time.Millisecond):
			drained = true
		}
	}

	const n = 500
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	if _, errOut, code := b.run(in.String(), "logger"); code != 0 {
		t.Fatalf("logger exited %d: %s", code, errOut)
	}
	topic := prefix + ".dev.logger.log"
	for i := range n {
		select {
		case d := <-deliveries:
			if d.RoutingKey != topic {
				t.Fatalf("message %d: routing key %q, want %q", i, d.RoutingKey, topic)
			}
			env, err := message.DecodeObject(d.Body)
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if msg, _ := env["msg"].(map[string]any); msg["log"] != fmt.Sprintf("line %d", i) {
				t.Fatalf("message %d: %s, want line %d (lost or reordered)", i, d.Body, i)
			}
			if canon, _ := message.Canonical(env); string(canon) != string(d.Body) {
				t.Fatalf("message %d was re-serialised on the way:\n got %s\nwant %s", i, d.Body, canon)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("received %d of %d messages; bridge stderr:\n%s", i, n, bridge.stderr.String())
		}
	}
	if code := bridge.stop(t, os.Interrupt); code != 0 {
		t.Errorf("bridge exited %d on SIGINT, want 0; stderr:\n%s", code, bridge.stderr.String())
	}
}

// A broker into the ZeroMQ bus: a plain STOMP client sends to RabbitMQ,
// `fedmsg bridge` forwards to the relay (active, like fedmsg logger), and
// `fedmsg tail --json` prints every body exactly as the client sent it.
func TestBridgeCarriesSTOMPIntoTheBus(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitSTOMP)
	b := newBus(t)
	prefix := fmt.Sprintf("org.bridge%d", time.Now().UnixNano())
	cfgPath := filepath.Join(b.dir, "bridge.yaml")
	cfg := fmt.Sprintf(`transports:
  bus: {kind: zmq}
  rabbit: {kind: stomp, stomp_uri: "%s"}
routes:
  - {name: rabbit-to-bus, from: rabbit, to: bus, topics: ["%s."]}
`, brokertest.RabbitSTOMP.Addr, prefix)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	conn, err := stomp.Dial("tcp", brokertest.RabbitSTOMP.Addr, stompBrokers[0].login...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Disconnect()
	send := func(topic string, body []byte) {
		if err := conn.Send("/topic/"+topic, "application/json", body, stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
	}

	b.startRelay()
	tail := b.start("tail", "--json", "--topic", prefix+".")
	bridge := b.start("bridge", "--config", cfgPath)
	bridge.waitStderr(t, "rabbit-to-bus")
	// Until a probe sent to the broker comes out of tail, the bridge's
	// subscription, its connection to the relay and tail's subscription
	// are not all up.
	probeTopic := prefix + ".dev.e2e.probe"
	probe := []byte(`{"msg":{},"topic":"` + probeTopic + `"}`)
	deadline := time.Now().Add(30 * time.Second)
	for settled := false; !settled; {
		send(probeTopic, probe)
		select {
		case l := <-tail.lines:
			settled = l == string(probe)
		case <-time.After(300 * time.Millisecond):
		}
		if !settled && time.Now().After(deadline) {
			t.Fatalf("no probe crossed the bridge within 30s; bridge stderr:\n%s", bridge.stderr.String())
		}
	}
	for drained := false; !drained; {
		select {
		case <-tail.lines:
		case <-time.After(500 * time.Millisecond):
			drained = true
		}
	}

	topic, python := pythonFrame(t, prefix)
	const n = 300
	for i := range n {
		// Real fedmsg's signed frame first, then envelopes of our own.
		body := python
		if i > 0 {
			body = []byte(fmt.Sprintf(`{"i":%d,"msg":{"n":%d},"topic":"%s"}`, i, i, topic))
		}
		send(topic, body)
		if got := tail.nextLine(t); got != string(body) {
			t.Fatalf("message %d: tail printed\n%s\nwant, byte for byte:\n%s", i, got, body)
		}
	}
	if code := bridge.stop(t, os.Interrupt); code != 0 {
		t.Errorf("bridge exited %d on SIGINT, want 0; stderr:\n%s", code, bridge.stderr.String())
	}
}
