package test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
	"github.com/gofedmsg/fedmsg/message"
)

// With zmq_enabled false the logger and tail go through a broker. These
// tests check them against plain clients of the broker (go-stomp and
// amqp091-go used directly), not against our own transports.

// brokerBus is a bus whose commands talk to a broker instead of ZeroMQ,
// with a topic prefix of its own so parallel runs on the shared broker do
// not see each other's messages.
func brokerBus(t *testing.T, keys ...string) (*bus, string) {
	b := newBus(t)
	prefix := fmt.Sprintf("org.e2e%d", time.Now().UnixNano())
	b.env = append(b.env, "FEDMSG_ZMQ_ENABLED=false", "FEDMSG_TOPIC_PREFIX="+prefix)
	b.env = append(b.env, keys...)
	return b, prefix
}

var stompBrokers = []struct {
	broker brokertest.Broker
	login  []func(*stomp.Conn) error
}{
	{brokertest.RabbitSTOMP, []func(*stomp.Conn) error{stomp.ConnOpt.Host("/"), stomp.ConnOpt.Login("guest", "guest")}},
	{brokertest.ActiveMQSTOMP, nil},
}

func TestLoggerThroughSTOMPReachesAPlainSubscriber(t *testing.T) {
	for _, sb := range stompBrokers {
		t.Run(sb.broker.Name, func(t *testing.T) {
			brokertest.Use(t, sb.broker)
			b, prefix := brokerBus(t, "FEDMSG_STOMP_URI="+sb.broker.Addr)
			conn, err := stomp.Dial("tcp", sb.broker.Addr, sb.login...)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Disconnect()
			topic := prefix + ".dev.logger.log"
			sub, err := conn.Subscribe("/topic/"+topic, stomp.AckAuto)
			if err != nil {
				t.Fatal(err)
			}
			awaitSubscription(t, conn, sub, "/topic/"+topic)
			if _, errOut, code := b.run("Hello, world.\n", "logger"); code != 0 {
				t.Fatalf("logger exited %d: %s", code, errOut)
			}
			for {
				select {
				case m := <-sub.C:
					if m.Err != nil {
						t.Fatal(m.Err)
					}
					if string(m.Body) == stompProbe {
						continue // a late probe
					}
					checkLoggerEnvelope(t, m.Body, prefix)
				case <-time.After(15 * time.Second):
					t.Fatal("the plain STOMP subscriber got nothing within 15s")
				}
				break
			}
		})
	}
}

func TestLoggerThroughAMQPReachesAPlainConsumer(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQP)
	b, prefix := brokerBus(t, "FEDMSG_AMQP_URL=[amqp://guest:guest@"+brokertest.RabbitAMQP.Addr+"/]")
	topic := prefix + ".dev.logger.log"
	deliveries := plainAMQPConsumer(t, "amqp://guest:guest@"+brokertest.RabbitAMQP.Addr+"/", topic)
	if _, errOut, code := b.run("Hello, world.\n", "logger"); code != 0 {
		t.Fatalf("logger exited %d: %s", code, errOut)
	}
	select {
	case d := <-deliveries:
		if d.RoutingKey != topic {
			t.Errorf("routing key %q, want %q", d.RoutingKey, topic)
		}
		if d.ContentType != "application/json" {
			t.Errorf("content_type %q, want application/json", d.ContentType)
		}
		env := checkLoggerEnvelope(t, d.Body, prefix)
		if d.MessageId != env["msg_id"] {
			t.Errorf("message_id %q, want the envelope's msg_id %q", d.MessageId, env["msg_id"])
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the plain AMQP consumer got nothing within 15s")
	}
}

const stompProbe = `{"probe":true}`

// awaitSubscription returns once sub receives a probe sent to dest: a
// broker (ActiveMQ especially) may make a SUBSCRIBE effective after later
// frames of other connections, and a topic keeps nothing for a late
// subscriber.
func awaitSubscription(t *testing.T, conn *stomp.Conn, sub *stomp.Subscription, dest string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if err := conn.Send(dest, "application/json", []byte(stompProbe)); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-sub.C:
			if m.Err != nil {
				t.Fatal(m.Err)
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Fatalf("the plain STOMP subscription to %s never received a probe", dest)
}

// plainSTOMPSender sends with go-stomp alone to /topic/<topic>, each
// message with a receipt.
func plainSTOMPSender(t *testing.T, conn *stomp.Conn) func(topic string, body []byte) {
	return func(topic string, body []byte) {
		if err := conn.Send("/topic/"+topic, "application/json", body, stomp.SendOpt.Receipt); err != nil {
			t.Fatal(err)
		}
	}
}

// plainAMQPPublisher publishes with amqp091-go alone to amq.topic, the
// topic as routing key.
func plainAMQPPublisher(t *testing.T, url string) func(topic string, body []byte) {
	t.Helper()
	return plainAMQPPublisherTo(t, url, "amq.topic")
}

// plainAMQPChannel opens a channel on a connection of its own, closed
// when t ends.
func plainAMQPChannel(t *testing.T, url string) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// plainAMQPPublisherTo is plainAMQPPublisher to another exchange.
func plainAMQPPublisherTo(t *testing.T, url, exchange string) func(topic string, body []byte) {
	t.Helper()
	ch := plainAMQPChannel(t, url)
	return func(topic string, body []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := ch.PublishWithContext(ctx, exchange, topic, false, false,
			amqp.Publishing{ContentType: "application/json", Body: body})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// plainAMQPConsumer consumes, with amqp091-go used directly, what
// amq.topic routes by bindingKey to a private queue; the binding exists
// when it returns.
func plainAMQPConsumer(t *testing.T, url, bindingKey string) <-chan amqp.Delivery {
	t.Helper()
	return plainAMQPConsumerOn(t, url, "amq.topic", bindingKey)
}

// plainAMQPConsumerOn is plainAMQPConsumer on another exchange.
func plainAMQPConsumerOn(t *testing.T, url, exchange, bindingKey string) <-chan amqp.Delivery {
	t.Helper()
	ch := plainAMQPChannel(t, url)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, bindingKey, exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return deliveries
}

// checkLoggerEnvelope compares a body with the frame real fedmsg-logger
// produced for the same line (prefix aside), and checks it is canonical.
func checkLoggerEnvelope(t *testing.T, body []byte, prefix string) map[string]any {
	t.Helper()
	_, want := wire(t, "logger-unsigned")
	want = bytes.ReplaceAll(want, []byte(`"org.fedoraproject.dev.logger.log"`), []byte(`"`+prefix+`.dev.logger.log"`))
	sameFieldsAs(t, body, want)
	env, err := message.DecodeObject(body)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// startBrokerTail starts `fedmsg tail --json` and returns once a probe a
// plain client publishes has come out of it (the subscription is made
// asynchronously, and a topic keeps nothing for a late subscriber).
func startBrokerTail(t *testing.T, b *bus, prefix string, send func(topic string, body []byte)) *proc {
	t.Helper()
	tail := b.start("tail", "--json", "--topic", prefix+".")
	probeTopic := prefix + ".dev.e2e.probe"
	probe := []byte(`{"msg":{},"topic":"` + probeTopic + `"}`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		send(probeTopic, probe)
		select {
		case l := <-tail.lines:
			if l != string(probe) {
				t.Fatalf("unexpected line before the probe: %s", l)
			}
			for { // drain the other probes
				select {
				case l := <-tail.lines:
					if l != string(probe) {
						t.Fatalf("unexpected line while draining probes: %s", l)
					}
					continue
				case <-time.After(500 * time.Millisecond):
				}
				return tail
			}
		case <-time.After(300 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("tail printed no probe within 30s; stderr:\n%s", tail.stderr.String())
		}
	}
}

// pythonFrame is a body real fedmsg produced, with its topic moved under
// prefix; tail must print it byte for byte.
func pythonFrame(t *testing.T, prefix string) (topic string, body []byte) {
	frame0, frame1 := wire(t, "relay-in")
	topic = strings.Replace(string(frame0), "org.fedoraproject", prefix, 1)
	body = bytes.Replace(frame1, frame0, []byte(topic), 1)
	return topic, body
}

func TestTailShowsWhatAPlainSTOMPClientSent(t *testing.T) {
	for _, sb := range stompBrokers {
		t.Run(sb.broker.Name, func(t *testing.T) {
			brokertest.Use(t, sb.broker)
			b, prefix := brokerBus(t, "FEDMSG_STOMP_URI="+sb.broker.Addr)
			conn, err := stomp.Dial("tcp", sb.broker.Addr, sb.login...)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Disconnect()
			send := plainSTOMPSender(t, conn)
			tail := startBrokerTail(t, b, prefix, send)
			topic, body := pythonFrame(t, prefix)
			send(topic, body)
			if got := tail.nextLine(t); got != string(body) {
				t.Errorf("tail --json printed\n%s\nwant the body sent, byte for byte:\n%s", got, body)
			}
		})
	}
}

func TestTailShowsWhatAPlainAMQPClientSent(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQP)
	url := "amqp://guest:guest@" + brokertest.RabbitAMQP.Addr + "/"
	b, prefix := brokerBus(t, "FEDMSG_AMQP_URL=["+url+"]")
	send := plainAMQPPublisher(t, url)
	tail := startBrokerTail(t, b, prefix, send)
	topic, body := pythonFrame(t, prefix)
	send(topic, body)
	if got := tail.nextLine(t); got != string(body) {
		t.Errorf("tail --json printed\n%s\nwant the body sent, byte for byte:\n%s", got, body)
	}
}

func TestNoBrokerConfiguredSaysWhichKeysToSet(t *testing.T) {
	b, _ := brokerBus(t)
	_, errOut, code := b.run("hi\n", "logger")
	if code == 0 {
		t.Fatal("logger succeeded with zmq_enabled false and no broker")
	}
	for _, key := range []string{"stomp_uri", "amqp_url"} {
		if !strings.Contains(errOut, key) {
			t.Errorf("the error does not name %s: %s", key, errOut)
		}
	}
}
