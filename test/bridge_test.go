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

// received is one message a plain broker client got: its topic (routing
// key or destination) and body.
type received struct {
	topic string
	body  []byte
}

// plainSTOMPConsumer subscribes, with go-stomp alone, to every topic under
// prefix, and returns once a probe it sent itself has come back (the
// subscription is then live).
func plainSTOMPConsumer(t *testing.T, broker brokertest.Broker, login []func(*stomp.Conn) error, prefix string) <-chan received {
	t.Helper()
	conn, err := stomp.Dial("tcp", broker.Addr, login...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Disconnect() })
	wildcard := "#"
	if broker == brokertest.ActiveMQSTOMP {
		wildcard = ">"
	}
	sub, err := conn.Subscribe("/topic/"+prefix+"."+wildcard, stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	awaitSubscription(t, conn, sub, "/topic/"+prefix+".probe")
	out := make(chan received, 1024)
	go func() {
		defer close(out)
		for m := range sub.C {
			if m.Err != nil || string(m.Body) == stompProbe {
				continue
			}
			out <- received{strings.TrimPrefix(m.Destination, "/topic/"), m.Body}
		}
	}()
	return out
}

// The ZeroMQ bus into each broker through `fedmsg bridge`, across
// processes: logger -> relay -> bridge -> broker, read by a plain client
// of the broker. All 10,000 messages arrive, in order, as the canonical
// envelopes the logger published.
func TestBridgeCarriesTheBusIntoBrokers(t *testing.T) {
	const n = 10000
	for _, tc := range []struct {
		broker  brokertest.Broker
		sink    func(prefix string) string // the sink transport's YAML
		consume func(t *testing.T, prefix string) <-chan received
	}{
		{brokertest.RabbitAMQP,
			func(string) string {
				return fmt.Sprintf("{kind: amqp, amqp_url: [amqp://guest:guest@%s/]}", brokertest.RabbitAMQP.Addr)
			},
			func(t *testing.T, prefix string) <-chan received {
				ds := plainAMQPConsumer(t, "amqp://guest:guest@"+brokertest.RabbitAMQP.Addr+"/", prefix+".#")
				out := make(chan received, 1024)
				go func() {
					for d := range ds {
						out <- received{d.RoutingKey, d.Body}
					}
				}()
				return out
			}},
		{brokertest.RabbitSTOMP,
			func(string) string { return fmt.Sprintf("{kind: stomp, stomp_uri: %q}", brokertest.RabbitSTOMP.Addr) },
			func(t *testing.T, prefix string) <-chan received {
				return plainSTOMPConsumer(t, brokertest.RabbitSTOMP, stompBrokers[0].login, prefix)
			}},
		{brokertest.ActiveMQSTOMP,
			func(string) string { return fmt.Sprintf("{kind: stomp, stomp_uri: %q}", brokertest.ActiveMQSTOMP.Addr) },
			func(t *testing.T, prefix string) <-chan received {
				return plainSTOMPConsumer(t, brokertest.ActiveMQSTOMP, nil, prefix)
			}},
	} {
		t.Run(tc.broker.Name, func(t *testing.T) {
			brokertest.Use(t, tc.broker)
			b := newBus(t)
			prefix := fmt.Sprintf("org.bridge%d", time.Now().UnixNano())
			b.env = append(b.env, "FEDMSG_TOPIC_PREFIX="+prefix)
			cfgPath := filepath.Join(b.dir, "bridge.yaml")
			cfg := fmt.Sprintf("transports:\n  bus: {kind: zmq}\n  broker: %s\nroutes:\n  - {name: bus-to-broker, from: bus, to: broker, topics: [\"%s.\"]}\nbridge: {id: e2e-gw}\n",
				tc.sink(prefix), prefix)
			if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			got := tc.consume(t, prefix)

			b.startRelay()
			bridge := b.start("bridge", "--config", cfgPath)
			bridge.waitStderr(t, "bus-to-broker")
			bridge.waitStderr(t, "bridge_id=e2e-gw") // the bridge section's id
			// The bridge's subscription to the relay settles
			// asynchronously: probe until one comes through.
			deadline := time.Now().Add(30 * time.Second)
			for settled := false; !settled; {
				if _, errOut, code := b.run("", "logger", "--modname", "e2e", "--topic", "probe", "--message", "probe"); code != 0 {
					t.Fatalf("probe logger exited %d: %s", code, errOut)
				}
				select {
				case <-got:
					settled = true
				case <-time.After(300 * time.Millisecond):
				}
				if !settled && time.Now().After(deadline) {
					t.Fatalf("no probe crossed the bridge within 30s; bridge stderr:\n%s", bridge.stderr.String())
				}
			}
			for drained := false; !drained; {
				select {
				case <-got:
				case <-time.After(500 * time.Millisecond):
					drained = true
				}
			}

			var in strings.Builder
			for i := range n {
				fmt.Fprintf(&in, "line %d\n", i)
			}
			logger := b.command("logger")
			logger.Stdin = strings.NewReader(in.String())
			if out, err := logger.CombinedOutput(); err != nil {
				t.Fatalf("logger: %v\n%s", err, out)
			}
			topic := prefix + ".dev.logger.log"
			for i := range n {
				select {
				case m := <-got:
					if m.topic != topic {
						t.Fatalf("message %d: topic %q, want %q", i, m.topic, topic)
					}
					env, err := message.DecodeObject(m.body)
					if err != nil {
						t.Fatalf("message %d: %v", i, err)
					}
					if msg, _ := env["msg"].(map[string]any); msg["log"] != fmt.Sprintf("line %d", i) {
						t.Fatalf("message %d: %s, want line %d (lost or reordered)", i, m.body, i)
					}
					if canon, _ := message.Canonical(env); string(canon) != string(m.body) {
						t.Fatalf("message %d was re-serialised on the way:\n got %s\nwant %s", i, m.body, canon)
					}
				case <-time.After(15 * time.Second):
					t.Fatalf("received %d of %d messages; bridge stderr:\n%s", i, n, bridge.stderr.String())
				}
			}
			if code := bridge.stop(t, os.Interrupt); code != 0 {
				t.Errorf("bridge exited %d on SIGINT, want 0; stderr:\n%s", code, bridge.stderr.String())
			}
		})
	}
}

// A broker into the ZeroMQ bus: a plain STOMP client sends to RabbitMQ,
// `fedmsg bridge` forwards to the relay (active, like fedmsg logger), and
// `fedmsg tail --json` prints every body exactly as the client sent it,
// 10,000 of them, in order.
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
	send := plainSTOMPSender(t, conn)

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
	const n = 10000
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

// ZeroMQ <-> AMQP both ways at once, through one `fedmsg bridge`: the
// logger publishes on the bus while a plain AMQP client publishes to
// RabbitMQ. Every message reaches the other side once; nothing comes back
// to where it started (loop headers stop the AMQP echo, the msg_id window
// the ZeroMQ one).
func TestBridgeBothWaysNoEcho(t *testing.T) {
	const n = 10000
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
  - {name: bus-to-rabbit, from: bus, to: rabbit, topics: ["%[2]s."]}
  - {name: rabbit-to-bus, from: rabbit, to: bus, topics: ["%[2]s."]}
`, url, prefix)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	fromAMQP := plainAMQPConsumer(t, url, prefix+".#")
	sendAMQP := plainAMQPPublisher(t, url)
	amqpEnvelope := func(kind string, i int) (string, []byte) {
		topic := prefix + ".dev.amqp." + kind
		return topic, []byte(fmt.Sprintf(`{"msg":{"n":%d},"msg_id":"2026-%s-%08d","topic":"%s"}`, i, kind, i, topic))
	}

	b.startRelay()
	tail := b.start("tail", "--json", "--topic", prefix+".")
	bridge := b.start("bridge", "--config", cfgPath)
	bridge.waitStderr(t, "rabbit-to-bus")
	// Both directions are up once a probe from each side has crossed.
	deadline := time.Now().Add(30 * time.Second)
	for i, toBus, toAMQP := 0, false, false; !toBus || !toAMQP; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("probes did not cross both ways within 30s (to the bus: %v, to AMQP: %v); bridge stderr:\n%s", toBus, toAMQP, bridge.stderr.String())
		}
		if !toBus {
			sendAMQP(amqpEnvelope("probe", i))
		}
		if !toAMQP {
			if _, errOut, code := b.run("", "logger", "--modname", "e2e", "--topic", "probe", "--message", "probe"); code != 0 {
				t.Fatalf("probe logger exited %d: %s", code, errOut)
			}
		}
		timeout := time.After(300 * time.Millisecond)
	wait:
		for {
			select {
			case l := <-tail.lines:
				toBus = toBus || strings.Contains(l, ".dev.amqp.probe")
			case d := <-fromAMQP:
				toAMQP = toAMQP || d.RoutingKey == prefix+".dev.e2e.probe"
			case <-timeout:
				break wait
			}
		}
	}
	for drained := false; !drained; { // late probes, and their echoes if any
		select {
		case <-tail.lines:
		case <-fromAMQP:
		case <-time.After(time.Second):
			drained = true
		}
	}

	// Both directions at once.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			sendAMQP(amqpEnvelope("m", i))
		}
	}()
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	logger := b.command("logger")
	logger.Stdin = strings.NewReader(in.String())
	if out, err := logger.CombinedOutput(); err != nil {
		t.Fatalf("logger: %v\n%s", err, out)
	}
	<-done

	// Each side sees the other's n messages and its own n (the bus: what
	// the relay sends out; RabbitMQ: what the plain client published),
	// each exactly once.
	count := func(what string, next func() ([]byte, bool)) {
		seen := map[string]int{}
		for len(seen) < 2*n {
			body, ok := next()
			if !ok {
				t.Fatalf("%s: saw %d distinct messages of %d; bridge stderr:\n%s", what, len(seen), 2*n, bridge.stderr.String())
			}
			env, err := message.DecodeObject(body)
			if err != nil {
				t.Fatalf("%s: %v: %s", what, err, body)
			}
			id, _ := env["msg_id"].(string)
			if seen[id]++; seen[id] > 1 {
				t.Fatalf("%s: message %s seen twice: %s", what, id, body)
			}
		}
		// And nothing more arrives: no late echo.
		if body, ok := nextWithin(next, 2*time.Second); ok {
			t.Errorf("%s: an extra message after all %d: %s", what, 2*n, body)
		}
	}
	count("the bus (tail)", func() ([]byte, bool) {
		select {
		case l := <-tail.lines:
			return []byte(l), true
		case <-time.After(15 * time.Second):
			return nil, false
		}
	})
	count("RabbitMQ (plain consumer)", func() ([]byte, bool) {
		select {
		case d := <-fromAMQP:
			return d.Body, true
		case <-time.After(15 * time.Second):
			return nil, false
		}
	})
	if code := bridge.stop(t, os.Interrupt); code != 0 {
		t.Errorf("bridge exited %d on SIGINT, want 0; stderr:\n%s", code, bridge.stderr.String())
	}
}

// nextWithin calls next, giving up after d.
func nextWithin(next func() ([]byte, bool), d time.Duration) ([]byte, bool) {
	type r struct {
		b  []byte
		ok bool
	}
	c := make(chan r, 1)
	go func() { b, ok := next(); c <- r{b, ok} }()
	select {
	case v := <-c:
		return v.b, v.ok
	case <-time.After(d):
		return nil, false
	}
}
