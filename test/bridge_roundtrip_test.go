package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/message"
)

// End-to-end tests of `fedmsg bridge` from a broker into ZeroMQ, and of
// signed messages crossing RabbitMQ and coming back, across processes.

func rabbitURL() string { return "amqp://guest:guest@" + brokertest.RabbitAMQP.Addr + "/" }

// writeConfig writes a configuration file into b's directory.
func writeConfig(t *testing.T, b *bus, name, text string) string {
	t.Helper()
	path := filepath.Join(b.dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// privateExchange declares a topic exchange of the test's own (durable,
// as the amqp transport declares it) and deletes it when the test ends.
// The signed vectors cannot be moved under a topic prefix of the test's
// own (the topic is signed), so their own exchange keeps other tests'
// org.fedoraproject.dev traffic on the shared broker out.
func privateExchange(t *testing.T) string {
	t.Helper()
	ch := plainAMQPChannel(t, rabbitURL()) // its connection closes after the delete below
	name := fmt.Sprintf("gofedmsg.e2e.%d", time.Now().UnixNano())
	if err := ch.ExchangeDeclare(name, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ch.ExchangeDelete(name, false, false); err != nil {
			t.Logf("deleting exchange %s: %v", name, err)
		}
	})
	return name
}

// awaitPath returns once messages go all the way from send to lines.
// ZeroMQ subscriptions settle asynchronously (the slow joiner) and nothing
// else says when a chain of processes is up, so it sends probe i = 0, 1,
// ... until one comes out, then one more, the fence, and reads up to it:
// no probe is left in flight to be taken for a test message. send
// publishes probe i and returns what identifies that probe in its output
// line; every line before the fence must contain tag (be a probe). The
// probes must differ (a bridge suppresses a msg_id it forwarded already)
// and the path must keep order.
func awaitPath(t *testing.T, lines <-chan string, tag string, send func(i int) string) {
	t.Helper()
	next := func(timeout time.Duration) (string, bool) {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the reading process exited while probing")
			}
			if !strings.Contains(l, tag) {
				t.Fatalf("a line that is not a probe came out while probing: %s", l)
			}
			return l, true
		case <-time.After(timeout):
			return "", false
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	i := 0
	for arrived := false; !arrived; i++ {
		if time.Now().After(deadline) {
			t.Fatal("no probe came through within 30s")
		}
		send(i)
		_, arrived = next(300 * time.Millisecond)
	}
	fence := send(i)
	for {
		l, ok := next(15 * time.Second)
		if !ok {
			t.Fatal("the fence probe did not come through within 15s")
		}
		if strings.Contains(l, fence) {
			return
		}
	}
}

// x509Vector is one envelope of the fedmsg-x509 vectors and the verdict
// real fedmsg gave it under the default validation configuration.
type x509Vector struct {
	id, topic, msgID string
	body             []byte
	valid            bool
	derived          bool
	fedmsgLog        string // what fedmsg logged when validating it
}

// x509Vectors reads every envelope of the fedmsg-x509 manifest with its
// "<id>/default" verdict, and checks that the default case validates as
// b.x509Config configures a validator (the test CA, its CRL, no routing
// policy, not nitpicky): the verdicts hold for that configuration only.
func x509Vectors(t *testing.T) []x509Vector {
	t.Helper()
	var m x509Manifest
	if err := json.Unmarshal(sharedtest.Read(t, "fedmsg-x509", "manifest.json"), &m); err != nil {
		t.Fatal(err)
	}
	cases := map[string]int{}
	for i, c := range m.Cases {
		cases[c.ID] = i
	}
	var out []x509Vector
	for _, f := range m.Files {
		i, ok := cases[f.ID+"/default"]
		if !ok {
			t.Fatalf("manifest: no default case for %s", f.ID)
		}
		c := m.Cases[i]
		if policy, _ := c.Config["routing_policy"].(map[string]any); c.Validator != "validate" || c.Config["ca_cert_location"] != "ca.crt" ||
			c.Config["crl_location"] != "crl.pem" || len(policy) != 0 || c.Config["routing_nitpicky"] != false {
			t.Fatalf("manifest: case %s is not the configuration x509Config gives: %v", c.ID, c.Config)
		}
		body := sharedtest.Read(t, "fedmsg-x509", f.File)
		env, err := message.DecodeObject(body)
		if err != nil {
			t.Fatalf("%s: %v", f.ID, err)
		}
		if env["topic"] != f.Topic {
			t.Fatalf("%s: topic %v, manifest says %s", f.ID, env["topic"], f.Topic)
		}
		id, _ := env["msg_id"].(string)
		out = append(out, x509Vector{id: f.ID, topic: f.Topic, msgID: id, body: body, valid: c.Expected,
			derived: f.DerivedFrom != "", fedmsgLog: strings.Join(c.FedmsgLog, "; ")})
	}
	if len(out) < 19 {
		t.Fatalf("manifest has %d envelopes, want 19", len(out))
	}
	return out
}

// AMQP into the ZeroMQ bus: a plain amqp091-go client publishes 10,000
// messages to RabbitMQ, `fedmsg bridge` forwards them to the relay
// (active, like fedmsg logger), and `fedmsg tail --json` prints every body
// exactly as the client sent it, in order, each once. The route is
// at-most-once (a ZeroMQ sink cannot confirm), but nothing may be lost on
// loopback with high_water_mark 0 (the default).
func TestBridgeCarriesAMQPIntoTheBus(t *testing.T) {
	const n = 10000
	brokertest.Use(t, brokertest.RabbitAMQP)
	b := newBus(t)
	prefix := fmt.Sprintf("org.bridge%d", time.Now().UnixNano())
	cfgPath := writeConfig(t, b, "bridge.yaml", fmt.Sprintf(`transports:
  bus: {kind: zmq}
  rabbit: {kind: amqp, amqp_url: [%s]}
routes:
  - {name: rabbit-to-bus, from: rabbit, to: bus, topics: ["%s."]}
`, rabbitURL(), prefix))
	send := plainAMQPPublisher(t, rabbitURL())

	b.startRelay()
	tail := b.start("tail", "--json", "--topic", prefix+".")
	bridge := b.start("bridge", "--config", cfgPath)
	bridge.waitStderr(t, "rabbit-to-bus")
	probeTopic := prefix + ".dev.e2e.probe"
	probe := func(i int) []byte {
		return []byte(fmt.Sprintf(`{"msg":{},"msg_id":"%s-probe-%d","topic":"%s"}`, prefix, i, probeTopic))
	}
	awaitPath(t, tail.lines, prefix+"-probe-", func(i int) string {
		send(probeTopic, probe(i))
		return fmt.Sprintf(`"%s-probe-%d"`, prefix, i)
	})

	// Real fedmsg's signed frame first, then envelopes of our own that a
	// re-serialisation would change: raw UTF-8 (fedmsg writes \u escapes),
	// upper-case \u escapes and \/ (fedmsg writes neither), spaces after
	// the separators, keys out of order, 1.50; and now and then a big one.
	pyTopic, python := pythonFrame(t, prefix)
	topic := prefix + ".dev.amqp.m"
	bodies := make([][]byte, n)
	index := make(map[string]int, n)
	for i := range n {
		id := fmt.Sprintf("%s-%05d", prefix, i)
		switch {
		case i == 0:
			bodies[i] = python
		case i%1000 == 500:
			bodies[i] = []byte(fmt.Sprintf(`{"msg":{"big":"%s"},"msg_id":"%s","topic":"%s"}`, strings.Repeat("x", 64<<10), id, topic))
		case i%4 == 1:
			bodies[i] = []byte(fmt.Sprintf(`{"msg":{"n":%d,"text":"Grüße ☃ 𝄞"},"msg_id":"%s","topic":"%s"}`, i, id, topic))
		case i%4 == 2:
			bodies[i] = []byte(fmt.Sprintf(`{"msg":{"n":%d,"text":"Gr\u00FC\u00DFe \u2603 \/ \uD834\uDD1E"},"msg_id":"%s","topic":"%s"}`, i, id, topic))
		case i%4 == 3:
			bodies[i] = []byte(fmt.Sprintf(`{"topic": "%s", "msg_id": "%s", "msg": {"n": %d, "f": 1.50}}`, topic, id, i))
		default:
			bodies[i] = []byte(fmt.Sprintf(`{"i":%d,"msg":{"n":%d},"msg_id":"%s","timestamp":1700000000,"topic":"%s","username":"amqp"}`, i, i, id, topic))
		}
		index[string(bodies[i])] = i
	}
	start := time.Now()
	for i, body := range bodies {
		if i == 0 {
			send(pyTopic, body)
			continue
		}
		send(topic, body)
	}
	for i, want := range bodies {
		got := tail.nextLine(t)
		if got == string(want) {
			continue
		}
		if j, ok := index[got]; ok {
			t.Fatalf("message %d: tail printed message %d instead (lost, repeated or reordered)", i, j)
		}
		t.Fatalf("message %d: tail printed\n%.300s\nwant, byte for byte:\n%.300s", i, got, want)
	}
	// And nothing after them: a last message comes out next, no copy of
	// an earlier one before it.
	send(probeTopic, probe(-1))
	if got := tail.nextLine(t); got != string(probe(-1)) {
		t.Fatalf("after all %d messages tail printed\n%.300s\nwant the last one sent:\n%s", n, got, probe(-1))
	}
	t.Logf("%d messages AMQP -> bridge -> relay -> tail in %v", n, time.Since(start).Round(time.Millisecond))
	if code := bridge.stop(t, os.Interrupt); code != 0 {
		t.Errorf("bridge exited %d on SIGINT, want 0; stderr:\n%s", code, bridge.stderr.String())
	}
}

// Messages signed on the bus cross RabbitMQ and come back onto ZeroMQ
// valid and byte for byte, in both amqp_formats: relay -> bridge A ->
// RabbitMQ -> bridge B -> a ZeroMQ endpoint of B's own -> `fedmsg tail
// --validate`. What goes in: the valid vectors real fedmsg published
// (fedmsg-x509, byte for byte as fedmsg sent them) and messages of a
// signing `fedmsg logger`.
//
// Two bridge processes, not one with both routes: a bridge drops a
// message that already crossed it (its id in x-gofedmsg-bridge, which
// rides the broker) as a loop, so one bridge cannot carry a message out
// to the broker and back again; that is the loop prevention working.
// B's sink binds an endpoint of its own (name: bridge_back) rather than
// going through the relay, so the far tail reads only what came back,
// never the originals.
func TestBridgeSignedRoundTripThroughRabbitMQ(t *testing.T) {
	const nSigned = 100
	brokertest.Use(t, brokertest.RabbitAMQP)
	var vectors []x509Vector
	for _, v := range x509Vectors(t) {
		if v.valid && !v.derived { // the envelopes fedmsg published itself, canonical JSON
			vectors = append(vectors, v)
		}
	}
	if len(vectors) != 7 {
		t.Fatalf("%d valid vectors published by fedmsg, want 7", len(vectors))
	}
	for _, format := range []string{"fedmsg", "fedora-messaging"} {
		t.Run(format, func(t *testing.T) {
			b := newBus(t)
			x509 := b.x509Config(t, "sign_messages: true\n")
			b.env = append(b.env, "FEDMSG_CONFIG="+x509)
			exchange := privateExchange(t)
			rabbit := fmt.Sprintf("{kind: amqp, amqp_url: [%s], amqp_exchange: %s, amqp_format: %s}", rabbitURL(), exchange, format)
			back := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
			cfgA := writeConfig(t, b, "bridge-a.yaml", fmt.Sprintf(`transports:
  bus: {kind: zmq}
  rabbit: %s
routes:
  - {name: bus-to-rabbit, from: bus, to: rabbit, topics: ["org.fedoraproject.dev."]}
`, rabbit))
			cfgB := writeConfig(t, b, "bridge-b.yaml", fmt.Sprintf(`transports:
  rabbit: %s
  back: {kind: zmq, name: bridge_back, endpoints: {bridge_back: [%s]}}
routes:
  - {name: rabbit-to-back, from: rabbit, to: back, topics: ["org.fedoraproject.dev."]}
`, rabbit, back))
			atBroker := plainAMQPConsumerOn(t, rabbitURL(), exchange, "org.fedoraproject.dev.#")

			b.startRelay()
			pub, sub := rawSockets(t, b) // fedmsg's frames in, and what the relay sends out
			bridgeB := b.start("bridge", "--config", cfgB)
			bridgeB.waitStderr(t, "rabbit-to-back") // B's queue is bound: nothing A sends is missed
			bridgeA := b.start("bridge", "--config", cfgA)
			bridgeA.waitStderr(t, "bus-to-rabbit")
			far := *b
			far.env = slices.Concat(b.env, []string{"FEDMSG_ENDPOINTS={bridge_back: [" + back + "]}"})
			tail := far.start("tail", "--validate", "--json", "--topic", "org.fedoraproject.dev.")
			// Signed probes: they are validated on the far side too.
			awaitPath(t, tail.lines, "rtprobe-", func(i int) string {
				if _, errOut, code := b.run("", "logger", "--modname", "e2e", "--topic", "probe", "--message", fmt.Sprintf("rtprobe-%d", i)); code != 0 {
					t.Fatalf("probe logger exited %d: %s", code, errOut)
				}
				return fmt.Sprintf(`"rtprobe-%d"`, i)
			})

			var out bytes.Buffer // every line tail printed, for fedmsg verify
			for _, v := range vectors {
				if _, err := pub.SendMessage(v.topic, v.body); err != nil {
					t.Fatal(err)
				}
			}
			for _, v := range vectors {
				got := tail.nextLine(t)
				if got != string(v.body) {
					t.Fatalf("%s came back as\n%s\nwant, byte for byte, what fedmsg published:\n%s", v.id, got, v.body)
				}
				out.WriteString(got + "\n")
			}

			// Signed by our own logger: compared with what the relay sent
			// out, the input of bridge A.
			var lines strings.Builder
			for i := range nSigned {
				fmt.Fprintf(&lines, "signed %d ☃\n", i)
			}
			if _, errOut, code := b.run(lines.String(), "logger", "--modname", "e2e", "--topic", "signed"); code != 0 {
				t.Fatalf("logger exited %d: %s", code, errOut)
			}
			for i := range nSigned {
				var sent []byte
				for sent == nil {
					frames, err := sub.RecvMessageBytes(0)
					if err != nil {
						t.Fatalf("signed message %d: nothing from the relay: %v", i, err)
					}
					if string(frames[0]) == "org.fedoraproject.dev.e2e.signed" {
						sent = frames[1]
					}
				}
				got := tail.nextLine(t)
				if got != string(sent) {
					t.Fatalf("signed message %d came back as\n%s\nwant, byte for byte:\n%s", i, got, sent)
				}
				if !strings.Contains(got, fmt.Sprintf(`"log":"signed %d`, i)) {
					t.Fatalf("signed message %d: %s", i, got)
				}
				out.WriteString(got + "\n")
			}
			// Nothing more came back: the next message out is a new one.
			if _, errOut, code := b.run("", "logger", "--modname", "e2e", "--topic", "probe", "--message", "rtprobe-last"); code != 0 {
				t.Fatalf("logger exited %d: %s", code, errOut)
			}
			if got := tail.nextLine(t); !strings.Contains(got, `"rtprobe-last"`) {
				t.Fatalf("an extra message came back: %.300s", got)
			}
			if strings.Contains(tail.stderr.String(), "dropped") {
				t.Errorf("the validating tail dropped messages:\n%s", tail.stderr.String())
			}
			// And `fedmsg verify`, on its own, finds every one valid.
			res, errOut, code := b.run(out.String(), "verify", "--config", x509)
			if want := len(vectors) + nSigned; code != 0 || strings.Count(res, "valid\n") != want || strings.Contains(res, "invalid") {
				t.Errorf("fedmsg verify of what came back: exit %d, want %d valid:\n%s%s", code, want, res, errOut)
			}

			// On the broker the vectors were in the format asked for.
			for i := 0; i < len(vectors); {
				var d amqp.Delivery
				select {
				case d = <-atBroker:
				case <-time.After(15 * time.Second):
					t.Fatalf("the plain consumer of %s got %d of the %d vectors", exchange, i, len(vectors))
				}
				if strings.HasPrefix(d.RoutingKey, "org.fedoraproject.dev.e2e.") {
					continue // probes and the logger's messages
				}
				v := vectors[i]
				i++
				if d.RoutingKey != v.topic {
					t.Fatalf("%s: routing key %q, want %q", v.id, d.RoutingKey, v.topic)
				}
				if format == "fedmsg" {
					if !bytes.Equal(d.Body, v.body) {
						t.Errorf("%s: amqp_format fedmsg: the body on the broker is not the envelope verbatim:\n%s", v.id, d.Body)
					}
					continue
				}
				env, _ := message.DecodeObject(v.body)
				wantMsg, _ := message.Canonical(env["msg"])
				gotMsg, err := message.CanonicalizeBytes(d.Body)
				if err != nil || !bytes.Equal(gotMsg, wantMsg) {
					t.Errorf("%s: amqp_format fedora-messaging: the body on the broker is not the envelope's msg (%v):\n%s", v.id, err, d.Body)
				}
				if _, ok := d.Headers["x-fedmsg-envelope"]; !ok {
					t.Errorf("%s: amqp_format fedora-messaging: no x-fedmsg-envelope header: %v", v.id, d.Headers)
				}
			}
			for _, p := range []*proc{bridgeA, bridgeB} {
				if code := p.stop(t, os.Interrupt); code != 0 {
					t.Errorf("bridge exited %d on SIGINT, want 0; stderr:\n%s", code, p.stderr.String())
				}
			}
		})
	}
}

// signature_* drop reasons for what real fedmsg logged when it refused a
// vector.
var fedmsgLogReasons = []struct{ log, reason string }{
	{"unable to get local issuer certificate", "signature_untrusted"},
	{"certificate revoked", "signature_revoked"},
	{"has an invalid signature", "signature_bad"},
	{"is disallowed", "signature_backend_disallowed"},
	{"Message unsigned?", "signature_unsigned"},
}

// signatures: require-valid across processes: every envelope of the
// fedmsg-x509 vectors, valid, tampered, revoked or untrusted, is published
// to RabbitMQ by a plain amqp091-go client; `fedmsg bridge`, with the same
// CA and CRL as real fedmsg's verdicts assume, carries them to a ZeroMQ
// endpoint, and `fedmsg tail --json --no-validate` there prints exactly
// the ones real fedmsg found valid, byte for byte, and none of the others.
// Each drop is logged by the bridge with the reason fedmsg gave.
//
// v02-unicode, t06-unwrapped-base64 and t07-reserialized are one message
// (one msg_id), all three valid: a route forwards a msg_id once (the
// duplicate window), so they go through three routes from three
// exchanges, one each. The invalid ones all go by the first route, after
// the valid message they were derived from: a tampered copy must be
// dropped as tampered, not as a duplicate.
func TestBridgeRequireValidPassesOnlyValidVectors(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQP)
	vectors := x509Vectors(t)
	route := make([]int, len(vectors))
	nRoutes := 1
	for i, v := range vectors {
		if v.valid {
			for _, w := range vectors[:i] {
				if w.valid && w.msgID == v.msgID {
					route[i]++
				}
			}
			nRoutes = max(nRoutes, route[i]+1)
		}
	}

	b := newBus(t)
	x509 := b.x509Config(t, "")
	out := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	b.env = append(b.env, "FEDMSG_CONFIG="+x509, "FEDMSG_ENDPOINTS={bridge_out: ["+out+"]}")
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "transports:\n  out: {kind: zmq, name: bridge_out}\n")
	send := make([]func(topic string, body []byte), nRoutes)
	for k := range nRoutes {
		exchange := privateExchange(t)
		send[k] = plainAMQPPublisherTo(t, rabbitURL(), exchange)
		fmt.Fprintf(&cfg, "  rabbit%d: {kind: amqp, amqp_url: [%s], amqp_exchange: %s}\n", k, rabbitURL(), exchange)
	}
	fmt.Fprintf(&cfg, "routes:\n")
	for k := range nRoutes {
		fmt.Fprintf(&cfg, "  - {name: rabbit%d-to-bus, from: rabbit%d, to: out, topics: [\"org.fedoraproject.dev.\"], signatures: require-valid}\n", k, k)
	}
	cfgPath := writeConfig(t, b, "bridge.yaml", cfg.String())

	bridge := b.start("bridge", "--config", cfgPath)
	bridge.waitStderr(t, fmt.Sprintf("rabbit%d-to-bus", nRoutes-1)) // every queue is bound
	tail := b.start("tail", "--json", "--no-validate", "--topic", "org.fedoraproject.dev.")
	// Probes must validate to cross: freshly signed by `fedmsg sign`.
	signed := func(id string) []byte {
		env := fmt.Sprintf(`{"i":1,"msg":{"probe":true},"msg_id":%q,"timestamp":1700000000,"topic":"org.fedoraproject.dev.e2e.probe","username":"fedmsg"}`, id)
		res, errOut, code := b.run(env, "sign", "--cert-prefix", "shell")
		if code != 0 {
			t.Fatalf("fedmsg sign exited %d: %s", code, errOut)
		}
		return []byte(strings.TrimSuffix(res, "\n"))
	}
	nonce := time.Now().UnixNano()
	awaitPath(t, tail.lines, "rvprobe-", func(i int) string {
		id := fmt.Sprintf("rvprobe-%d-%d", nonce, i)
		send[0]("org.fedoraproject.dev.e2e.probe", signed(id))
		return `"` + id + `"`
	})

	want := map[string]string{} // body -> vector id, of the valid ones
	invalid := map[string]string{}
	var dropped []x509Vector // in the order the first route sees them
	for i, v := range vectors {
		send[route[i]](v.topic, v.body)
		if v.valid {
			want[string(v.body)] = v.id
		} else {
			invalid[string(v.body)] = v.id
			dropped = append(dropped, v)
		}
	}
	for range len(want) {
		got := tail.nextLine(t)
		switch {
		case want[got] != "":
			delete(want, got)
		case invalid[got] != "":
			t.Errorf("%s crossed the require-valid route; real fedmsg finds it invalid", invalid[got])
		default:
			t.Errorf("tail printed a body that is none of the valid vectors, byte for byte:\n%.300s", got)
		}
	}
	for _, id := range want {
		t.Errorf("%s (valid) did not cross", id)
	}
	// Nothing else follows on any route: a freshly signed last message
	// sent on each comes out before anything more.
	fences := map[string]bool{}
	for k := range nRoutes {
		id := fmt.Sprintf("rvprobe-%d-last-%d", nonce, k)
		send[k]("org.fedoraproject.dev.e2e.probe", signed(id))
		fences[`"`+id+`"`] = true
	}
	for len(fences) > 0 {
		got := tail.nextLine(t)
		found := false
		for f := range fences {
			if strings.Contains(got, f) {
				delete(fences, f)
				found = true
			}
		}
		if !found {
			t.Errorf("an extra message crossed: %.300s", got)
		}
	}

	// The bridge logged each drop with the reason fedmsg gave.
	if code := bridge.stop(t, os.Interrupt); code != 0 {
		t.Errorf("bridge exited %d on SIGINT, want 0", code)
	}
	logged := regexp.MustCompile(`msg="bridge: message dropped" .*`).FindAllString(bridge.stderr.String(), -1)
	if len(logged) != len(dropped) {
		t.Fatalf("the bridge logged %d drops, want %d (the invalid vectors):\n%s", len(logged), len(dropped), bridge.stderr.String())
	}
	reasonRe := regexp.MustCompile(`\breason=(\S+)`)
	for i, v := range dropped {
		want := ""
		for _, r := range fedmsgLogReasons {
			if strings.Contains(v.fedmsgLog, r.log) {
				want = r.reason
			}
		}
		if want == "" {
			t.Fatalf("%s: no reason known for fedmsg's log %q", v.id, v.fedmsgLog)
		}
		m := reasonRe.FindStringSubmatch(logged[i])
		if m == nil || m[1] != want || !strings.Contains(logged[i], "route=rabbit0-to-bus") || !strings.Contains(logged[i], "topic="+v.topic) {
			t.Errorf("%s (fedmsg: %q): the bridge logged\n%s\nwant reason=%s, its route and topic", v.id, v.fedmsgLog, logged[i], want)
		}
	}
	// The exit stats count them too (received and forwarded include the
	// probes).
	if !regexp.MustCompile(fmt.Sprintf(`route stopped" route=rabbit0-to-bus .*dropped=%d\b`, len(dropped))).MatchString(bridge.stderr.String()) {
		t.Errorf("the bridge's exit stats do not count %d drops on rabbit0-to-bus:\n%s", len(dropped), bridge.stderr.String())
	}
}
