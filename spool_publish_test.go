package fedmsg_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/internal/brokertest"
	"github.com/gofedmsg/fedmsg/message"
)

// durableQueue declares a durable queue bound to amq.topic for key, so
// that what is published while nobody consumes (and across a broker
// restart) is kept, and returns a function that reads n messages from it.
func durableQueue(t *testing.T, url, key string) func(n int, within time.Duration) []amqp091.Delivery {
	t.Helper()
	name := "gofedmsg.spooltest." + strings.ReplaceAll(key, "#", "all")
	declare := func() (*amqp091.Connection, *amqp091.Channel) {
		conn, err := amqp091.Dial(url)
		if err != nil {
			t.Fatal(err)
		}
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind(name, key, "amq.topic", false, nil); err != nil {
			t.Fatal(err)
		}
		return conn, ch
	}
	conn, _ := declare()
	conn.Close()
	t.Cleanup(func() {
		if conn, err := amqp091.Dial(url); err == nil {
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(name, false, false, false)
			}
			conn.Close()
		}
	})
	return func(n int, within time.Duration) []amqp091.Delivery {
		conn, ch := declare()
		defer conn.Close()
		ds, err := ch.Consume(name, "", true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []amqp091.Delivery
		deadline := time.After(within)
		for len(out) < n {
			select {
			case d := <-ds:
				out = append(out, d)
			case <-deadline:
				return out
			}
		}
		// Anything more would be a duplicate: give it a moment to show.
		select {
		case d := <-ds:
			out = append(out, d)
		case <-time.After(300 * time.Millisecond):
		}
		return out
	}
}

// With spool_dir, publishing through a broker that is down neither fails
// nor loses: Publish returns once the message is on disk, a process that
// exits before the broker is back leaves the messages in the spool, and
// the next process with the same configuration sends them, in order,
// once RabbitMQ is started again.
func TestSpoolPublishThroughBrokerOutage(t *testing.T) {
	brokertest.Claim(t)
	brokertest.Use(t, brokertest.RabbitAMQP)
	url := "amqp://guest:guest@" + brokertest.RabbitAMQP.Addr + "/"
	prefix := fmt.Sprintf("org.spooltest%d", time.Now().UnixNano())
	read := durableQueue(t, url, prefix+".#")

	cfg := config.Default()
	cfg.ZMQEnabled = false
	cfg.TopicPrefix = prefix
	cfg.AMQPURL = []string{url}
	cfg.SpoolDir = t.TempDir()

	brokertest.Stop(t, brokertest.RabbitAMQP)
	bus, err := fedmsg.New(cfg, fedmsg.WithModname("spooltest"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := bus.Publish(ctx, "count", "", map[string]any{"i": i})
		cancel()
		if err != nil {
			t.Fatalf("Publish %d with RabbitMQ down: %v (want it spooled)", i, err)
		}
	}
	if st, ok := bus.SpoolStats(); !ok || st.Depth != n {
		t.Fatalf("spool %+v (ok %v), want %d messages held", st, ok, n)
	}
	// The process ends while RabbitMQ is still down.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = bus.Close(ctx)
	cancel()

	next, err := fedmsg.New(cfg, fedmsg.WithModname("spooltest"))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := next.SpoolStats(); st.Recovered != n {
		t.Fatalf("the next process found %d spooled messages, want %d", st.Recovered, n)
	}
	brokertest.Start(t, brokertest.RabbitAMQP)
	got := read(n, 60*time.Second)
	if len(got) != n {
		t.Fatalf("%d messages arrived after RabbitMQ came back, want %d", len(got), n)
	}
	for i, d := range got {
		env, err := message.Decode(d.Body)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := env.(map[string]any)["msg"].(map[string]any)
		if fmt.Sprint(msg["i"]) != fmt.Sprint(i) {
			t.Fatalf("message %d carries i=%v: order lost", i, msg["i"])
		}
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, _ := next.SpoolStats()
	if err := next.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st.Depth != 0 {
		t.Errorf("spool still holds %d messages after they all arrived", st.Depth)
	}
}
