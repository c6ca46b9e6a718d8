package amqp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
	"github.com/gofedmsg/fedmsg/transport"
)

func TestOptionsValidation(t *testing.T) {
	const secret = "s3cr3tPassw0rd"
	good := func() Options { return Options{URLs: []string{"amqp://u:" + secret + "@broker/vh"}} }
	cases := []struct {
		name   string
		mod    func(*Options)
		option string // what the error must name
	}{
		{"no URL", func(o *Options) { o.URLs = nil }, "amqp_url"},
		{"bad scheme", func(o *Options) { o.URLs = []string{"http://u:" + secret + "@broker/"} }, "amqp_url"},
		{"unparsable", func(o *Options) { o.URLs = []string{"amqp://u:" + secret + "@bro ker:x/%zz"} }, "amqp_url"},
		{"no host", func(o *Options) { o.URLs = []string{"amqp://u:" + secret + "@/vh"} }, "amqp_url"},
		{"second URL bad", func(o *Options) { o.URLs = append(o.URLs, "stomp://u:"+secret+"@b/") }, "amqp_url) [1]"},
		{"bad port", func(o *Options) { o.URLs = []string{"amqp://u:" + secret + "@broker:99999/"} }, "amqp_url"},
		{"exchange chars", func(o *Options) { o.Exchange = "fed msg" }, "amqp_exchange"},
		{"queue chars", func(o *Options) { o.Queue = "q/1" }, "amqp_queue"},
		{"queue reserved", func(o *Options) { o.Queue = "amq.mine" }, "amqp_queue"},
		{"queue too long", func(o *Options) { o.Queue = strings.Repeat("q", 256) }, "amqp_queue"},
		{"prefetch negative", func(o *Options) { o.Prefetch = -1 }, "amqp_prefetch"},
		{"prefetch too big", func(o *Options) { o.Prefetch = 70000 }, "amqp_prefetch"},
		{"negative delay", func(o *Options) { o.ReconnectDelay = -time.Second }, "ReconnectDelay"},
		{"max below base", func(o *Options) { o.ReconnectDelay, o.MaxReconnectDelay = time.Second, time.Millisecond }, "MaxReconnectDelay"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := good()
			c.mod(&o)
			tr, err := New(o)
			if err == nil {
				tr.Close(context.Background())
				t.Fatal("New accepted the options")
			}
			if !errors.Is(err, ErrBadOptions) {
				t.Errorf("error does not wrap ErrBadOptions: %v", err)
			}
			if !strings.Contains(err.Error(), c.option) {
				t.Errorf("error does not name %q: %v", c.option, err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
	if err := good().Validate(); err != nil {
		t.Errorf("good options refused: %v", err)
	}
	// Several problems are reported together.
	o := good()
	o.Prefetch, o.Queue = -1, "amq.x"
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "amqp_prefetch") || !strings.Contains(err.Error(), "amqp_queue") {
		t.Errorf("want both problems, got %v", err)
	}
}

func TestExternalRule(t *testing.T) {
	withCert := &tls.Config{Certificates: []tls.Certificate{{}}}
	withCallback := &tls.Config{GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return nil, nil }}
	noCert := &tls.Config{}
	cases := []struct {
		url  string
		tls  *tls.Config
		want bool
	}{
		{"amqps://broker/", withCert, true},
		{"amqps://bridgeclient@broker/", withCert, true}, // a user without password: still EXTERNAL
		{"amqps://broker/", withCallback, true},
		{"amqps://u:p@broker/", withCert, false},                   // a password means PLAIN
		{"amqps://u:@broker/", withCert, false},                    // even an empty one
		{"amqps://broker/", noCert, false},                         // nothing to authenticate with
		{"amqps://broker/", nil, false},                            // system roots, no certificate
		{"amqp://broker/", withCert, false},                        // no TLS, no certificate sent
		{"amqps://broker/?auth_mechanism=plain", withCert, false},  // the URL decides
		{"amqps://broker/?auth_mechanism=external", noCert, false}, // ... through amqp091-go
		{"amqps://u:p@broker/?auth_mechanism=external", withCert, false},
	}
	for _, c := range cases {
		u, err := parseURL(c.url)
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		if got := external(u, c.tls); got != c.want {
			t.Errorf("external(%s, cert=%v) = %v, want %v", c.url, c.tls != nil && c.tls != noCert, got, c.want)
		}
	}
}

// TestPasswordMeansPlain: with a client certificate and a password in the
// URL, PLAIN is used, so a wrong password is refused by the broker (with
// EXTERNAL the certificate alone would have been accepted); the error
// says not connected and never shows the password.
func TestPasswordMeansPlain(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQPS)
	const secret = "not-the-password-x9"
	o := testOptions(t, "amqps://bridgeclient:"+secret+"@127.0.0.1:5671/")
	o.TLS = clientTLS(t)
	tr := newT(t, o)
	// RabbitMQ answers a failed login after about 3 s.
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	err := tr.Publish(ctx, &transport.Message{Topic: uniqueTopic(t), Body: []byte(`{}`)})
	if !errors.Is(err, transport.ErrNotConnected) {
		t.Fatalf("want ErrNotConnected, got %v", err)
	}
	if !strings.Contains(err.Error(), "403") && !strings.Contains(strings.ToLower(err.Error()), "refused") {
		t.Errorf("want the broker's refusal in the error, got %v", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("the error shows the password: %v", err)
	}
}

// roundTrip subscribes tr to topic, publishes m and returns what arrived.
func roundTrip(t *testing.T, pub, sub *Transport, m *transport.Message) *transport.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	ch, err := sub.Subscribe(ctx, m.Topic)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := pub.Publish(ctx, m); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	select {
	case d := <-ch:
		return d
	case <-ctx.Done():
		t.Fatal("nothing arrived")
	}
	return nil
}

func TestDeadFirstURLFailsOver(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQP)
	o := testOptions(t, deadURL, plainURL)
	tr := newT(t, o)
	start := time.Now()
	d := roundTrip(t, tr, tr, &transport.Message{Topic: uniqueTopic(t) + ".x", Body: []byte(`{"n":1}`)})
	if string(d.Message.Body) != `{"n":1}` {
		t.Errorf("got %s", d.Message.Body)
	}
	_ = d.Ack(context.Background())
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("failing over to the second URL took %v", took)
	}
}

// TestWireFormat checks what Publish puts on the wire, read by plain
// amqp091-go, and what Subscribe makes of a message published by another
// client (non-string headers are left out).
func TestWireFormat(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQP)
	tr := newT(t, testOptions(t, plainURL))
	raw := rawChannel(t)
	topic := uniqueTopic(t) + ".wire"
	deliveries := rawConsumer(t, raw, topic)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := []byte("{\n \"z\": 1.0, \"a\": \"caf\u00e9\"}")
	if err := tr.Publish(ctx, &transport.Message{Topic: topic, Body: body, ID: "2026-abc", Headers: map[string]string{"x-origin": "zmq", "empty": ""}}); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-deliveries:
		if d.RoutingKey != topic || string(d.Body) != string(body) || d.MessageId != "2026-abc" ||
			d.ContentType != "application/json" || d.DeliveryMode != amqp091.Persistent ||
			d.Headers["x-origin"] != "zmq" || d.Headers["empty"] != "" || len(d.Headers) != 2 {
			t.Errorf("on the wire: key %q body %q id %q type %q mode %d headers %v",
				d.RoutingKey, d.Body, d.MessageId, d.ContentType, d.DeliveryMode, d.Headers)
		}
	case <-ctx.Done():
		t.Fatal("the raw consumer got nothing")
	}

	ch, err := tr.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	err = raw.PublishWithContext(ctx, "amq.topic", topic, false, false, amqp091.Publishing{
		MessageId: "id-2",
		Headers:   amqp091.Table{"s": "v", "n": int32(3), "b": true, "t": amqp091.Table{"x": "y"}},
		Body:      []byte(`{"from":"raw"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-ch:
		m := d.Message
		if m.Topic != topic || string(m.Body) != `{"from":"raw"}` || m.ID != "id-2" || len(m.Headers) != 1 || m.Headers["s"] != "v" {
			t.Errorf("received %+v", m)
		}
		if err := d.Ack(ctx); err != nil {
			t.Errorf("Ack: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the subscription got nothing")
	}
}

// TestNackRedelivery: Nack makes the broker deliver the same message
// again, headers and id included; a permanent Nack drops it.
func TestNackRedelivery(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQP)
	tr := newT(t, testOptions(t, plainURL))
	topic := uniqueTopic(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, err := tr.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	m := &transport.Message{Topic: topic + ".n", Body: []byte(`{"again":1}`), ID: "id-n", Headers: map[string]string{"h": "1"}}
	if err := tr.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	next := func(what string) *transport.Delivery {
		select {
		case d := <-ch:
			return d
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
		return nil
	}
	for i := range 3 {
		d := next(fmt.Sprintf("delivery %d", i))
		if d.Message.ID != m.ID || string(d.Message.Body) != string(m.Body) || d.Message.Headers["h"] != "1" {
			t.Fatalf("delivery %d: %+v", i, d.Message)
		}
		if err := d.Nack(ctx, errors.New("later")); err != nil {
			t.Fatalf("Nack: %v", err)
		}
	}
	d := next("the fourth delivery")
	if err := d.Nack(ctx, fmt.Errorf("poison: %w", transport.ErrPermanent)); err != nil {
		t.Fatalf("permanent Nack: %v", err)
	}
	if err := tr.Publish(ctx, &transport.Message{Topic: topic + ".fence", Body: []byte(`{"fence":1}`)}); err != nil {
		t.Fatal(err)
	}
	if d := next("the fence"); string(d.Message.Body) != `{"fence":1}` {
		t.Errorf("after a permanent Nack got %s", d.Message.Body)
	}
}

// TestStaleDeliveryAfterConnectionLoss: a delivery from a channel that
// died cannot be settled (its tag means nothing on the new channel); the
// subscription channel stays open and the broker delivers the message
// again after the reconnect.
func TestStaleDeliveryAfterConnectionLoss(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQP)
	o := testOptions(t, plainURL)
	o.Queue = uniqueQueue(t)
	tr := newT(t, o)
	topic := uniqueTopic(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ch, err := tr.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(ctx, &transport.Message{Topic: topic + ".x", Body: []byte(`{"n":1}`)}); err != nil {
		t.Fatal(err)
	}
	first := <-ch
	tr.mu.Lock()
	s := tr.sess
	tr.mu.Unlock()
	if s == nil {
		t.Fatal("no session")
	}
	_ = s.conn.Close() // the connection goes away under the transport
	err = first.Ack(ctx)
	if !errors.Is(err, ErrStaleDelivery) || !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Ack of a delivery from a dead channel: want ErrStaleDelivery, got %v", err)
	}
	select {
	case d, ok := <-ch:
		if !ok {
			t.Fatal("the subscription channel closed on a connection loss")
		}
		if string(d.Message.Body) != `{"n":1}` {
			t.Fatalf("got %s", d.Message.Body)
		}
		if err := d.Ack(ctx); err != nil {
			t.Errorf("Ack after the reconnect: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the message was not delivered again after the reconnect")
	}
	// Publishing works on the new connection too.
	if err := tr.Publish(ctx, &transport.Message{Topic: topic + ".y", Body: []byte(`{"n":2}`)}); err != nil {
		t.Fatal(err)
	}
	if d := <-ch; string(d.Message.Body) != `{"n":2}` {
		t.Errorf("got %s", d.Message.Body)
	}
}

// TestNoBroker: with nothing listening, New does not block, Publish fails
// within its ctx with ErrNotConnected (and no password), Subscribe returns
// at once with a channel that Close closes, and Close is quick.
func TestNoBroker(t *testing.T) {
	const secret = "hunter2-z"
	o := testOptions(t, "amqp://guest:"+secret+"@127.0.0.1:1/", "amqp://guest:"+secret+"@127.0.0.1:2/")
	start := time.Now()
	tr, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("New took %v", took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = tr.Publish(ctx, &transport.Message{Topic: "a.b", Body: []byte(`{}`)})
	if !errors.Is(err, transport.ErrNotConnected) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish: want ErrNotConnected and the deadline, got %v", err)
	}
	if err != nil && strings.Contains(err.Error(), secret) {
		t.Errorf("the error shows the password: %v", err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	defer scancel()
	ch, err := tr.Subscribe(sctx, "a.")
	if err != nil {
		t.Fatalf("Subscribe without a broker: %v", err)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer ccancel()
	if err := tr.Close(cctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, ok := <-ch; ok {
		t.Error("a delivery without a broker")
	}
	if err := tr.Publish(context.Background(), &transport.Message{Topic: "a.b"}); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
}

func TestPublishRefusesWhatAMQPCannotCarry(t *testing.T) {
	tr, err := New(testOptions(t, deadURL))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close(context.Background())
	for _, m := range []*transport.Message{
		nil,
		{Topic: strings.Repeat("t", 256)},
		{Topic: "a", ID: strings.Repeat("i", 256)},
		{Topic: "a", Headers: map[string]string{strings.Repeat("h", 256): "v"}},
	} {
		if err := tr.Publish(context.Background(), m); !errors.Is(err, transport.ErrBadMessage) {
			t.Errorf("want ErrBadMessage, got %v", err)
		}
	}
}

func TestBindingKeys(t *testing.T) {
	long := strings.Repeat("w.", 200)
	cases := []struct {
		patterns []string
		want     []string
	}{
		{nil, []string{"#"}},
		{[]string{""}, []string{"#"}},
		{[]string{"org"}, []string{"#"}},
		{[]string{"org.fedoraproject.prod.bodhi"}, []string{"org.fedoraproject.prod.#"}},
		{[]string{"org.fedoraproject.prod."}, []string{"org.fedoraproject.prod.#"}},
		{[]string{"org.fedoraproject.*.bodhi.update"}, []string{"org.fedoraproject.#"}},
		{[]string{"org.fedoraproject.pr?d.x"}, []string{"org.fedoraproject.#"}},
		{[]string{"org.fed[o]raproject.x"}, []string{"org.#"}},
		{[]string{"*.x"}, []string{"#"}},
		{[]string{"a.b.", "a.b.c", "x.y.z"}, []string{"a.b.#", "x.y.#"}},
		{[]string{"a.b.", ""}, []string{"#"}},
		{[]string{long + "x"}, nil}, // checked below: fits in 255 bytes
	}
	for _, c := range cases {
		got := bindingKeys(c.patterns)
		if c.want == nil {
			if len(got) != 1 || len(got[0]) > 255 || !strings.HasSuffix(got[0], ".#") {
				t.Errorf("bindingKeys(long) = %q", got)
			}
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("bindingKeys(%q) = %q, want %q", c.patterns, got, c.want)
		}
	}
}
