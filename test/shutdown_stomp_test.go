package test

import (
	"fmt"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
)

// The SIGTERM test of shutdown_test.go with STOMP on one side of the
// route: a STOMP source redelivers only through a queue (stomp_queue), a
// STOMP sink confirms with receipts, and either side may settle or close
// differently from AMQP on the way out.

// SIGTERM mid-stream from a STOMP queue: 5,000 messages a plain STOMP
// client sent to RabbitMQ wait in the durable queue of the bridge's
// stomp_queue; the bridge forwards them to an AMQP exchange, is stopped
// by SIGTERM while it does and started again. Every message reaches the
// sink at least once, byte for byte, and the first run exits 0 within
// the shutdown bound.
func TestSIGTERMMidStreamLosesNothingFromASTOMPQueue(t *testing.T) {
	const n = 5000
	brokertest.Use(t, brokertest.RabbitSTOMP)
	brokertest.Use(t, brokertest.RabbitAMQP)
	b := newBus(t)
	prefix, topic, bodies := shutdownStream(n)
	dstX := privateExchange(t)
	// The queue stomp_queue names, declared (and deleted at the end) by
	// the test before anything is sent, so the messages wait in it: a
	// /topic/ publish goes to amq.topic, the topic as routing key. The
	// bridge's subscription declares the same durable queue (nothing to
	// change) and binds it with "#" as well.
	queue, qch := durableQueue(t, "amq.topic", prefix+".#")
	sink := amqpReceived(plainAMQPConsumerOn(t, rabbitURL(), dstX, "#"))

	conn, err := stomp.Dial("tcp", brokertest.RabbitSTOMP.Addr, stompBrokers[0].login...)
	if err != nil {
		t.Fatalf("connecting to %s: %v", brokertest.RabbitSTOMP.Addr, err)
	}
	defer conn.Disconnect()
	send := plainSTOMPSender(t, conn) // a receipt each: it is queued when Send returns
	sent := time.Now()
	for _, body := range bodies {
		send(topic, body)
	}
	left := queueBacklog(t, qch, queue)
	if got := left(); got != n {
		t.Fatalf("the queue holds %d messages after %d were sent with receipts", got, n)
	}
	t.Logf("sent %d messages over STOMP in %v", n, time.Since(sent).Round(time.Millisecond))

	sigtermMidStream(t, b, topic, bodies, midStreamRoute{
		cfg: fmt.Sprintf(`transports:
  src: {kind: stomp, stomp_uri: "%s", stomp_queue: "/queue/%s"}
  dst: {kind: amqp, amqp_url: [%s], amqp_exchange: %s}
routes:
  - {name: stomp-queue-to-exchange, from: src, to: dst, topics: ["%s."], delivery: at-least-once}
`, brokertest.RabbitSTOMP.Addr, queue, rabbitURL(), dstX, prefix),
		sink: sink,
		// Other tests' /topic/ messages reach the queue too once the
		// bridge has bound it with "#": they can only make this count
		// larger, so a loss it shows is real.
		backlog: left,
	})
}

// SIGTERM mid-stream into a STOMP sink: 5,000 messages wait in a durable
// AMQP queue; the bridge forwards them to RabbitMQ over STOMP (a receipt
// each), is stopped by SIGTERM while it does and started again. Every
// message reaches a plain STOMP subscriber at least once, byte for byte,
// and the first run exits 0 within the shutdown bound.
func TestSIGTERMMidStreamLosesNothingIntoSTOMP(t *testing.T) {
	const n = 5000
	brokertest.Use(t, brokertest.RabbitSTOMP)
	brokertest.Use(t, brokertest.RabbitAMQP)
	b := newBus(t)
	prefix, topic, bodies := shutdownStream(n)
	srcX := privateExchange(t)
	queue, qch := durableQueue(t, srcX, prefix+".#")
	sink := plainSTOMPConsumer(t, brokertest.RabbitSTOMP, stompBrokers[0].login, prefix)

	publishConfirmed(t, srcX, topic, bodies)

	sigtermMidStream(t, b, topic, bodies, midStreamRoute{
		cfg: fmt.Sprintf(`transports:
  src: {kind: amqp, amqp_url: [%s], amqp_exchange: %s, amqp_queue: %s, amqp_prefetch: 1000}
  dst: {kind: stomp, stomp_uri: "%s"}
routes:
  - {name: queue-to-stomp, from: src, to: dst, topics: ["%s."], delivery: at-least-once}
`, rabbitURL(), srcX, queue, brokertest.RabbitSTOMP.Addr, prefix),
		sink:    sink,
		backlog: queueBacklog(t, qch, queue),
	})
}
