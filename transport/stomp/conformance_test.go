package stomp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
	"github.com/gofedmsg/fedmsg/internal/tlsfiles"
	"github.com/gofedmsg/fedmsg/transport"
	"github.com/gofedmsg/fedmsg/transport/transporttest"
)

// testOptions are o for broker b, with test-friendly reconnects: the
// fault tests restart brokers and should not wait out a 60s backoff.
func testOptions(b brokertest.Broker) Options {
	return Options{
		Addrs:             []string{b.Addr},
		HeartBeat:         time.Second,
		MaxReconnectDelay: time.Second,
	}
}

func newT(t testing.TB, o Options) *Transport {
	t.Helper()
	tr, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { closeT(t, tr) })
	return tr
}

func closeT(t testing.TB, tr transport.Transport) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// pairFactory makes a publisher and a subscriber transport (two
// connections, as two processes would have) from the same options.
func pairFactory(b brokertest.Broker, opts func(t testing.TB) Options) func(t testing.TB) (transport.Transport, transport.Transport) {
	return func(t testing.TB) (transport.Transport, transport.Transport) {
		brokertest.Use(t, b)
		o := opts(t)
		return newT(t, o), newT(t, o)
	}
}

func hooksFor(b brokertest.Broker) (stop, start func(testing.TB)) {
	return func(t testing.TB) { brokertest.Stop(t, b) }, func(t testing.TB) { brokertest.Start(t, b) }
}

// TestConformanceRabbitMQ: topic subscriptions (transient queues): no
// Redelivery, not Durable. The broker fault tests run on the durable
// queue variant below, which is where they say the most.
func TestConformanceRabbitMQ(t *testing.T) {
	transporttest.Run(t, transporttest.Factory{
		New: pairFactory(brokertest.RabbitSTOMP, func(testing.TB) Options { return testOptions(brokertest.RabbitSTOMP) }),
	})
}

// rabbitQueue returns a fresh queue, deleted when t ends: the queue is
// durable and bound to amq.topic with "#", so left behind it would
// collect every message on the broker. One queue serves a whole suite
// run (rabbitmqctl takes a second per call): the suite ignores, acking,
// what other tests left in it.
func rabbitQueue(t testing.TB) string {
	name := fmt.Sprintf("gofedmsg-stomp-test-%08x", rand.Uint32())
	t.Cleanup(func() {
		out, err := exec.Command("rabbitmqctl", "-q", "delete_queue", name).CombinedOutput()
		if err != nil {
			t.Logf("rabbitmqctl delete_queue %s: %v: %s", name, err, out)
		}
	})
	return "/queue/" + name
}

// TestConformanceRabbitMQQueue: Options.Queue on RabbitMQ, a durable
// queue fed from /topic/ publishes: Redelivery and Durable, and the broker
// fault tests (a restart must lose no confirmed message).
func TestConformanceRabbitMQQueue(t *testing.T) {
	stop, start := hooksFor(brokertest.RabbitSTOMP)
	queue := rabbitQueue(t)
	transporttest.Run(t, transporttest.Factory{
		New: pairFactory(brokertest.RabbitSTOMP, func(t testing.TB) Options {
			o := testOptions(brokertest.RabbitSTOMP)
			o.Queue = queue
			return o
		}),
		StopBroker: stop, StartBroker: start, ClaimBroker: brokertest.Claim,
	})
}

// TestConformanceActiveMQ: topics on ActiveMQ ('>' wildcards), with the
// broker fault tests (ActiveMQ is killed and started again).
func TestConformanceActiveMQ(t *testing.T) {
	stop, start := hooksFor(brokertest.ActiveMQSTOMP)
	transporttest.Run(t, transporttest.Factory{
		New:        pairFactory(brokertest.ActiveMQSTOMP, func(testing.TB) Options { return testOptions(brokertest.ActiveMQSTOMP) }),
		StopBroker: stop, StartBroker: start, ClaimBroker: brokertest.Claim,
	})
}

// TestConformanceActiveMQDurable: Options.DurableName on ActiveMQ,
// durable topic subscriptions acked individually: Redelivery and Durable,
// with the broker fault tests. Each pair has its own names (the publisher
// a client-id of its own: ActiveMQ allows one connection per client-id);
// the durable subscription is removed when the test ends.
func TestConformanceActiveMQDurable(t *testing.T) {
	stop, start := hooksFor(brokertest.ActiveMQSTOMP)
	transporttest.Run(t, transporttest.Factory{
		New: func(t testing.TB) (transport.Transport, transport.Transport) {
			brokertest.Use(t, brokertest.ActiveMQSTOMP)
			name := durableName(t)
			brokertest.CleanupActiveMQDurable(t, name, name)
			sub := newT(t, durableOptions(name))
			return newT(t, durableOptions(name+"-pub")), sub
		},
		StopBroker: stop, StartBroker: start, ClaimBroker: brokertest.Claim,
	})
}

// tlsOptions: STOMP over TLS on RabbitMQ with the test PKI's client
// certificate, which logs in as its CN (no login header is sent).
func tlsOptions(t testing.TB) Options {
	pki := brokertest.TLS(t)
	cfg, err := tlsfiles.Files{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}.Config("")
	if err != nil {
		t.Fatalf("TLS config: %v", err)
	}
	o := testOptions(brokertest.RabbitSTOMPTLS)
	o.TLS = cfg
	return o
}

func TestConformanceRabbitMQTLS(t *testing.T) {
	transporttest.Run(t, transporttest.Factory{New: pairFactory(brokertest.RabbitSTOMPTLS, tlsOptions)})
}
