package opsserver

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
	"github.com/gofedmsg/fedmsg/transport"
	"github.com/gofedmsg/fedmsg/transport/amqp"
	"github.com/gofedmsg/fedmsg/transport/stomp"
)

// brokerTransport is what the AMQP and STOMP transports offer the
// metrics endpoint.
type brokerTransport interface {
	transport.Transport
	Broker
}

// Against the real brokers: each confirmed Publish call is one
// observation of fedmsg_publish_confirm_seconds, the connection gauge is
// 1 and readiness passes once connected.
func TestBrokerConfirmLatencyAndConnection(t *testing.T) {
	for _, tc := range []struct {
		broker brokertest.Broker
		kind   string
		open   func(t *testing.T, s *Server) brokerTransport
	}{
		{brokertest.RabbitAMQP, "amqp", func(t *testing.T, s *Server) brokerTransport {
			tr, err := amqp.New(amqp.Options{URLs: []string{"amqp://guest:guest@" + brokertest.RabbitAMQP.Addr + "/"}})
			if err != nil {
				t.Fatal(err)
			}
			tr.SetPublishObserver(s.PublishObserver("rabbit", "amqp"))
			return tr
		}},
		{brokertest.RabbitSTOMP, "stomp", func(t *testing.T, s *Server) brokerTransport {
			tr, err := stomp.New(stomp.Options{Addrs: []string{brokertest.RabbitSTOMP.Addr}})
			if err != nil {
				t.Fatal(err)
			}
			tr.SetPublishObserver(s.PublishObserver("rabbit", "stomp"))
			return tr
		}},
	} {
		t.Run(tc.broker.Name, func(t *testing.T) {
			brokertest.Use(t, tc.broker)
			s := New(nil)
			tr := tc.open(t, s)
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = tr.Close(ctx)
			})
			s.AddBroker("rabbit", tc.kind, tr)
			s.SetAlive(true)
			base := startServer(t, s)

			const calls = 5
			topic := fmt.Sprintf("org.opsserver%d.dev.test", time.Now().UnixNano())
			for i := range calls {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				// Two messages per call: one observation per call.
				err := tr.Publish(ctx,
					&transport.Message{Topic: topic, Body: []byte(fmt.Sprintf(`{"i": %d}`, 2*i))},
					&transport.Message{Topic: topic, Body: []byte(fmt.Sprintf(`{"i": %d}`, 2*i+1))})
				cancel()
				if err != nil {
					t.Fatal(err)
				}
			}
			observed := float64(calls)
			// A pipelining sender (AMQP's Send, what the bridge uses) is
			// observed when its Pending resolves.
			if s, ok := tr.(transport.Sender); ok {
				const sends = 3
				for i := range sends {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					p, err := s.Send(ctx, &transport.Message{Topic: topic, Body: []byte(fmt.Sprintf(`{"send": %d}`, i))})
					if err == nil {
						err = p.Wait(ctx)
					}
					cancel()
					if err != nil {
						t.Fatal(err)
					}
				}
				observed += sends
			}
			labels := []string{"transport", "rabbit", "kind", tc.kind}
			fams := scrape(t, base)
			check(t, fams, []expect{
				{"fedmsg_publish_confirm_seconds", labels, observed}, // the sample count
				{"fedmsg_broker_connected", labels, 1},
				{"fedmsg_broker_reconnects_total", labels, 0},
			})
			for _, m := range fams["fedmsg_publish_confirm_seconds"].GetMetric() {
				if sum := m.GetHistogram().GetSampleSum(); !(sum > 0 && sum < calls*10) {
					t.Errorf("confirm latency sum %vs for %d calls, want a positive time within their timeouts", sum, calls)
				}
			}
			if code, body := get(t, base+"/readyz"); code != http.StatusOK {
				t.Errorf("/readyz while connected: %d %q", code, body)
			}
		})
	}
}
