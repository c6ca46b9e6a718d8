package zmq

import (
	"strings"
	"testing"

	"github.com/gofedmsg/fedmsg/transport"
	"github.com/gofedmsg/fedmsg/transport/transporttest"
)

// TestConformance runs the transport contract's suite on a publisher bound
// to an ephemeral loopback port and a subscriber connected to it. ZeroMQ
// declares only Ordered, so the Confirms and Redelivery tests report
// themselves skipped by capability, and the broker fault tests as not
// applicable. Subscriptions settle by probing, for ZeroMQ's slow joiner, as
// awaitFlow does in this package's own tests.
func TestConformance(t *testing.T) {
	transporttest.Run(t, transporttest.Factory{
		New: func(t testing.TB) (transport.Transport, transport.Transport) {
			o := testOptions(t)
			o.Bind = []string{"tcp://127.0.0.1:*"}
			pub, err := New(o)
			if err != nil {
				t.Fatalf("publisher: %v", err)
			}
			t.Cleanup(func() { closeT(t, pub) })
			addr := strings.Replace(pub.PublisherAddr(), "0.0.0.0", "127.0.0.1", 1)
			so := testOptions(t)
			so.Subscribe = []string{addr}
			sub, err := New(so)
			if err != nil {
				t.Fatalf("subscriber: %v", err)
			}
			t.Cleanup(func() { closeT(t, sub) })
			return pub, sub
		},
		Settle: transporttest.SettleByProbe,
	})
}
