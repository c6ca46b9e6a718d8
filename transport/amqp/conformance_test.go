package amqp

import (
	"testing"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
	"github.com/gofedmsg/fedmsg/transport"
	"github.com/gofedmsg/fedmsg/transport/transporttest"
)

// brokerHooks stop and restart RabbitMQ (through brokertest, which keeps
// other test processes off the broker meanwhile) for the fault tests.
func brokerHooks(b brokertest.Broker, f transporttest.Factory) transporttest.Factory {
	f.StopBroker = func(t testing.TB) { brokertest.Stop(t, b) }
	f.StartBroker = func(t testing.TB) { brokertest.Start(t, b) }
	f.ClaimBroker = brokertest.Claim
	return f
}

// TestConformanceExclusive: each subscription has its own exclusive,
// server-named queue; not Durable, so the suite excuses messages confirmed
// while the subscriber was away during the broker restart.
func TestConformanceExclusive(t *testing.T) {
	transporttest.Run(t, brokerHooks(brokertest.RabbitAMQP, transporttest.Factory{
		New: func(t testing.TB) (transport.Transport, transport.Transport) {
			brokertest.Use(t, brokertest.RabbitAMQP)
			return newT(t, testOptions(t, plainURL)), newT(t, testOptions(t, plainURL))
		},
	}))
}

// TestConformanceDurableQueue: both sides name one durable queue (unique
// to the test, deleted after it), so the transports are Durable and no
// confirmed message may be lost across the broker restart.
func TestConformanceDurableQueue(t *testing.T) {
	transporttest.Run(t, brokerHooks(brokertest.RabbitAMQP, transporttest.Factory{
		New: func(t testing.TB) (transport.Transport, transport.Transport) {
			brokertest.Use(t, brokertest.RabbitAMQP)
			q := uniqueQueue(t)
			po, so := testOptions(t, plainURL), testOptions(t, plainURL)
			po.Queue, so.Queue = q, q
			return newT(t, po), newT(t, so)
		},
	}))
}

// TestConformanceTLSExternal: AMQPS with the broker verified against the
// test CA and SASL EXTERNAL from the client certificate (no password in
// the URL).
func TestConformanceTLSExternal(t *testing.T) {
	transporttest.Run(t, brokerHooks(brokertest.RabbitAMQPS, transporttest.Factory{
		New: func(t testing.TB) (transport.Transport, transport.Transport) {
			brokertest.Use(t, brokertest.RabbitAMQPS)
			mk := func() transport.Transport {
				o := testOptions(t, tlsURL)
				o.TLS = clientTLS(t)
				return newT(t, o)
			}
			return mk(), mk()
		},
	}))
}
