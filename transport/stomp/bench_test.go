package stomp

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/internal/sharedtest"

	gostomp "github.com/go-stomp/stomp/v3"
	"github.com/gofedmsg/fedmsg/internal/brokertest"
	"github.com/gofedmsg/fedmsg/transport"
)

// Benchmarks: one iteration publishes benchBatch copies of a real signed
// fedmsg envelope (2319 bytes), each with a receipt, and receives them
// all on a subscription (another connection). BenchmarkEndToEnd is this
// transport; BenchmarkRawEndToEnd the same with go-stomp's Conn used
// directly, which can only await one receipt at a time (Conn.Send holds
// its lock until the receipt). Compare msgs/s:
//
//	go test -run '^$' -bench 'EndToEnd' -benchtime 5x ./transport/stomp/
//
// "single" publishes one message per Publish call (the same sequential
// receipts as raw); "batch" passes all of them to one Publish, which
// pipelines the receipts.
const benchBatch = 2000

var benchBrokers = []brokertest.Broker{brokertest.RabbitSTOMP, brokertest.ActiveMQSTOMP}

func benchBody(b *testing.B) []byte {
	return sharedtest.Read(b, "fedmsg-wire", "logger-signed-json.frame1")
}

func BenchmarkEndToEnd(b *testing.B) {
	body := benchBody(b)
	for _, br := range benchBrokers {
		for _, mode := range []string{"single", "batch"} {
			b.Run(br.Name[:len(br.Name)-len(" STOMP")]+"/"+mode, func(b *testing.B) {
				brokertest.Use(b, br)
				o := testOptions(br)
				o.HeartBeat = 0
				pub, sub := newT(b, o), newT(b, o)
				topic := fmt.Sprintf("org.fedoraproject.bench.stomp.%d", time.Now().UnixNano())
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				ch, err := sub.Subscribe(ctx, topic)
				if err != nil {
					b.Fatal(err)
				}
				msgs := make([]*transport.Message, benchBatch)
				for i := range msgs {
					msgs[i] = &transport.Message{Topic: topic, Body: body}
				}
				b.SetBytes(int64(len(body) * benchBatch))
				start := time.Now()
				for b.Loop() {
					done := make(chan error, 1)
					go func() {
						pctx, pcancel := context.WithTimeout(ctx, time.Minute)
						defer pcancel()
						if mode == "batch" {
							done <- pub.Publish(pctx, msgs...)
							return
						}
						for _, m := range msgs {
							if err := pub.Publish(pctx, m); err != nil {
								done <- err
								return
							}
						}
						done <- nil
					}()
					for range benchBatch {
						select {
						case <-ch:
						case <-time.After(30 * time.Second):
							b.Fatal("messages stopped arriving")
						}
					}
					if err := <-done; err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*benchBatch)/time.Since(start).Seconds(), "msgs/s")
			})
		}
	}
}

func BenchmarkRawEndToEnd(b *testing.B) {
	body := benchBody(b)
	for _, br := range benchBrokers {
		b.Run(br.Name[:len(br.Name)-len(" STOMP")], func(b *testing.B) {
			brokertest.Use(b, br)
			dial := func() *gostomp.Conn {
				c, err := gostomp.Dial("tcp", br.Addr, gostomp.ConnOpt.Host("/"), gostomp.ConnOpt.Login("guest", "guest"), gostomp.ConnOpt.Logger(brokertest.QuietSTOMP{}))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = c.Disconnect() })
				return c
			}
			pub, subConn := dial(), dial()
			topic := fmt.Sprintf("org.fedoraproject.bench.raw.%d", time.Now().UnixNano())
			sub, err := subConn.Subscribe("/topic/"+topic, gostomp.AckAuto)
			if err != nil {
				b.Fatal(err)
			}
			// Conn.Subscribe does not await the broker, so probe until the
			// subscription receives, then let stray probes drain.
			probe := time.NewTicker(50 * time.Millisecond)
		settle:
			for {
				if err := pub.Send("/topic/"+topic, "application/json", body, gostomp.SendOpt.Receipt); err != nil {
					b.Fatal(err)
				}
				select {
				case <-sub.C:
					break settle
				case <-probe.C:
				case <-time.After(10 * time.Second):
					b.Fatal("the raw subscription never received")
				}
			}
			probe.Stop()
			for quiet := false; !quiet; {
				select {
				case <-sub.C:
				case <-time.After(200 * time.Millisecond):
					quiet = true
				}
			}
			b.SetBytes(int64(len(body) * benchBatch))
			start := time.Now()
			for b.Loop() {
				done := make(chan error, 1)
				go func() {
					for range benchBatch {
						if err := pub.Send("/topic/"+topic, "application/json", body,
							gostomp.SendOpt.Receipt, gostomp.SendOpt.Header("persistent", "true")); err != nil {
							done <- err
							return
						}
					}
					done <- nil
				}()
				for range benchBatch {
					select {
					case m := <-sub.C:
						if m.Err != nil {
							b.Fatal(m.Err)
						}
					case <-time.After(30 * time.Second):
						b.Fatal("messages stopped arriving")
					}
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*benchBatch)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
