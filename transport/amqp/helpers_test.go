package amqp

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
	"github.com/gofedmsg/fedmsg/internal/tlsfiles"
)

const (
	plainURL = "amqp://guest:guest@127.0.0.1:5672/"
	tlsURL   = "amqps://127.0.0.1:5671/" // no password: SASL EXTERNAL with the client certificate
	deadURL  = "amqp://guest:guest@127.0.0.1:1/"
)

// testLogger sends warnings to t.Log until the test's cleanups are done
// (a transport whose Close ran out of time may still log afterwards).
func testLogger(t testing.TB) *slog.Logger {
	var over atomic.Bool
	t.Cleanup(func() { over.Store(true) })
	return slog.New(slog.NewTextHandler(logWriter{t, &over}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type logWriter struct {
	t    testing.TB
	over *atomic.Bool
}

func (w logWriter) Write(p []byte) (int, error) {
	if !w.over.Load() {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// testOptions are Options for url with backoff short enough for tests.
func testOptions(t testing.TB, urls ...string) Options {
	return Options{
		URLs:              urls,
		Prefetch:          100,
		ReconnectDelay:    50 * time.Millisecond,
		MaxReconnectDelay: time.Second,
		Logger:            testLogger(t),
	}
}

// newT makes a transport closed at the end of the test.
func newT(t testing.TB, o Options) *Transport {
	t.Helper()
	tr, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := tr.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tr
}

// clientTLS is the test PKI's verifying configuration with the client
// certificate (CN=bridgeclient).
func clientTLS(t testing.TB) *tls.Config {
	t.Helper()
	f := brokertest.TLS(t)
	c, err := tlsfiles.Files{CA: f.CA, Cert: f.ClientCert, Key: f.ClientKey}.Config("")
	if err != nil {
		t.Fatalf("test TLS config: %v", err)
	}
	return c
}

// uniqueQueue names a durable queue for this test and deletes it when the
// test ends (registered first, so it runs after the transports closed).
func uniqueQueue(t testing.TB) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '.'
	}, t.Name())
	q := fmt.Sprintf("gofedmsg.test.%s.%08x", name, rand.Uint32())
	if len(q) > 200 {
		q = q[len(q)-200:]
	}
	q = strings.TrimLeft(q, ".")
	t.Cleanup(func() { deleteQueue(t, q) })
	return q
}

func deleteQueue(t testing.TB, q string) {
	conn, err := amqp091.Dial(plainURL)
	if err != nil {
		t.Errorf("deleting queue %s: %v", q, err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Errorf("deleting queue %s: %v", q, err)
		return
	}
	if _, err := ch.QueueDelete(q, false, false, false); err != nil {
		t.Errorf("deleting queue %s: %v", q, err)
	}
}

// rawChannel is a plain amqp091-go channel for looking at the wire.
func rawChannel(t testing.TB) *amqp091.Channel {
	t.Helper()
	conn, err := amqp091.Dial(plainURL)
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("raw channel: %v", err)
	}
	return ch
}

func uniqueTopic(t testing.TB) string {
	return fmt.Sprintf("org.fedoraproject.amqptest.r%08x", rand.Uint32())
}

// rawConsumer consumes, with amqp091-go alone on raw, what amq.topic
// routes by bindingKey to a private queue (auto-ack); the binding exists
// when it returns.
func rawConsumer(t testing.TB, raw *amqp091.Channel, bindingKey string) <-chan amqp091.Delivery {
	t.Helper()
	q, err := raw.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.QueueBind(q.Name, bindingKey, "amq.topic", false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := raw.Consume(q.Name, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return deliveries
}
