package amqp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/transport"
)

// Both benchmarks move the same message (a signed fedmsg envelope made by
// Python fedmsg) from one connection to another through RabbitMQ:
// published in calls of benchBatch messages, each call awaiting its
// publisher confirms, consumed with manual acks and the same prefetch.
// BenchmarkRawEndToEnd is amqp091-go alone; compare msgs/s:
//
//	go test -run '^$' -bench EndToEnd -count 3 ./transport/amqp/
const (
	benchBatch    = 100
	benchPrefetch = 100
)

func benchMessage(b *testing.B) (topic string, body []byte) {
	topic = strings.TrimSpace(string(sharedtest.Read(b, "fedmsg-wire", "logger-signed-json.frame0")))
	body = sharedtest.Read(b, "fedmsg-wire", "logger-signed-json.frame1")
	// A topic of this run only, so that nothing else reaches the queue.
	return fmt.Sprintf("%s.bench%08x", topic, rand.Uint32()), body
}

func reportRate(b *testing.B, start time.Time) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

func BenchmarkEndToEnd(b *testing.B) {
	brokertest.Use(b, brokertest.RabbitAMQP)
	topic, body := benchMessage(b)
	mk := func() *Transport {
		o := Options{URLs: []string{plainURL}, Prefetch: benchPrefetch}
		tr, err := New(o)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { tr.Close(context.Background()) })
		return tr
	}
	pub, sub := mk(), mk()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		b.Fatal(err)
	}
	got := make(chan int, 1)
	go func() {
		n := 0
		for d := range ch {
			if err := d.Ack(ctx); err != nil {
				b.Error(err)
			}
			n++
			if n == b.N {
				got <- n
			}
		}
	}()
	batch := make([]*transport.Message, benchBatch)
	for i := range batch {
		batch[i] = &transport.Message{Topic: topic, Body: body, ID: "2026-bench"}
	}
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; sent += benchBatch {
		if err := pub.Publish(ctx, batch[:min(benchBatch, b.N-sent)]...); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-got:
	case <-time.After(60 * time.Second):
		b.Fatal("not everything arrived")
	}
	reportRate(b, start)
}

func BenchmarkRawEndToEnd(b *testing.B) {
	brokertest.Use(b, brokertest.RabbitAMQP)
	topic, body := benchMessage(b)
	dial := func() *amqp091.Channel {
		conn, err := amqp091.Dial(plainURL)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		ch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		return ch
	}
	pub, sub := dial(), dial()
	if err := pub.Confirm(false); err != nil {
		b.Fatal(err)
	}
	if err := sub.Qos(benchPrefetch, 0, false); err != nil {
		b.Fatal(err)
	}
	q, err := sub.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := sub.QueueBind(q.Name, topic, "amq.topic", false, nil); err != nil {
		b.Fatal(err)
	}
	deliveries, err := sub.Consume(q.Name, "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	got := make(chan int, 1)
	go func() {
		n := 0
		for d := range deliveries {
			if err := d.Ack(false); err != nil {
				b.Error(err)
			}
			n++
			if n == b.N {
				got <- n
			}
		}
	}()
	msg := amqp091.Publishing{ContentType: "application/json", DeliveryMode: amqp091.Persistent, MessageId: "2026-bench", Body: body}
	confirms := make([]*amqp091.DeferredConfirmation, 0, benchBatch)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; sent += benchBatch {
		confirms = confirms[:0]
		for range min(benchBatch, b.N-sent) {
			dc, err := pub.PublishWithDeferredConfirm("amq.topic", topic, false, false, msg)
			if err != nil {
				b.Fatal(err)
			}
			confirms = append(confirms, dc)
		}
		for _, dc := range confirms {
			if !dc.Wait() {
				b.Fatal("nacked")
			}
		}
	}
	select {
	case <-got:
	case <-time.After(60 * time.Second):
		b.Fatal("not everything arrived")
	}
	reportRate(b, start)
}
