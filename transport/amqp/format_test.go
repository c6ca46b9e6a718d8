package amqp

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/gofedmsg/fedmsg/internal/brokertest"
	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/transport"
)

// canonicalVectors returns the signed x509 envelopes (real fedmsg output
// and derived ones) whose file is canonical JSON, by name.
func canonicalVectors(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(sharedtest.Dir(t, "fedmsg-x509", "signed"), "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if c, err := message.CanonicalizeBytes(data); err == nil && bytes.Equal(c, data) {
			out[filepath.Base(f)] = data
		}
	}
	if len(out) < 15 {
		t.Fatalf("only %d canonical signed vectors found", len(out))
	}
	return out
}

func TestFormatOption(t *testing.T) {
	for _, f := range []string{"", FormatFedmsg, FormatFedoraMessaging} {
		if err := (Options{URLs: []string{plainURL}, Format: f}).Validate(); err != nil {
			t.Errorf("Format %q refused: %v", f, err)
		}
	}
	err := Options{URLs: []string{plainURL}, Format: "fedora_messaging"}.Validate()
	if !errors.Is(err, ErrBadOptions) || !strings.Contains(err.Error(), "amqp_format") {
		t.Errorf("bad Format: %v", err)
	}
}

func TestPythonSpacing(t *testing.T) {
	for in, want := range map[string]string{
		`{}`:                              `{}`,
		`{"a":[1,2,{"b":"x,y:z"}],"c":3}`: `{"a": [1, 2, {"b": "x,y:z"}], "c": 3}`,
		`"q\":,\\"`:                       `"q\":,\\"`,
		`{"\\":",","k":"\\\\:"}`:          `{"\\": ",", "k": "\\\\:"}`,
		`[]`:                              `[]`,
	} {
		if got := string(pythonSpacing([]byte(in))); got != want {
			t.Errorf("pythonSpacing(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestFedoraMessagingEncodeDecode: every canonical signed vector goes
// through the fedora-messaging form and comes back byte for byte, without
// a broker (the broker test below does the same over the wire).
func TestFedoraMessagingEncodeDecode(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 890, time.FixedZone("x", 3600))
	for name, data := range canonicalVectors(t) {
		p, err := fedoraPublishing(&transport.Message{Topic: "t", Body: data}, now)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p.Headers[HeaderSentAt] != "2026-03-04T04:06:07+00:00" {
			t.Errorf("%s: sent-at %v", name, p.Headers[HeaderSentAt])
		}
		d := &amqp091.Delivery{RoutingKey: "t", Headers: p.Headers, Body: p.Body, MessageId: p.MessageId}
		m, err := fromFedoraMessaging(d, func() int64 { return 1 }, now)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(m.Body, data) {
			t.Errorf("%s: rebuilt\n%s\nwant\n%s", name, m.Body, data)
		}
	}
}

func TestFromPlainFedoraMessaging(t *testing.T) {
	now := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	i := int64(0)
	counter := func() int64 { i++; return i }
	cases := []struct {
		name string
		d    amqp091.Delivery
		want string // "" means an error
	}{
		{"full", amqp091.Delivery{RoutingKey: "org.fedoraproject.prod.x", MessageId: "2026-abc",
			Headers: amqp091.Table{HeaderSentAt: "2026-05-06T07:08:09+00:00", HeaderSchema: "base.message"},
			Body:    []byte(`{"b": 1.50, "a": "caf\u00e9"}`)},
			`{"i":1,"msg":{"a":"caf\u00e9","b":1.5},"msg_id":"2026-abc","timestamp":1778051289,"topic":"org.fedoraproject.prod.x","username":"amqp-bridge"}`},
		{"id without year, no sent-at", amqp091.Delivery{RoutingKey: "k", MessageId: "abc", Body: []byte(`[1]`)},
			`{"i":2,"msg":[1],"msg_id":"2027-abc","timestamp":1798859045,"topic":"k","username":"amqp-bridge"}`},
		{"no id, bad sent-at", amqp091.Delivery{RoutingKey: "k", Headers: amqp091.Table{HeaderSentAt: "yesterday"}, Body: []byte(`null`)},
			`{"i":3,"msg":null,"timestamp":1798859045,"topic":"k","username":"amqp-bridge"}`},
		{"body not JSON", amqp091.Delivery{RoutingKey: "k", Body: []byte(`{`)}, ""},
		{"empty body", amqp091.Delivery{RoutingKey: "k"}, ""},
		{"envelope header not an object", amqp091.Delivery{Headers: amqp091.Table{HeaderEnvelope: "[1]"}, Body: []byte(`{}`)}, ""},
		{"envelope header not a string", amqp091.Delivery{Headers: amqp091.Table{HeaderEnvelope: int32(1)}, Body: []byte(`{}`)}, ""},
		{"envelope header as bytes, no body", amqp091.Delivery{Headers: amqp091.Table{HeaderEnvelope: []byte(`{"topic":"a","msg":9}`)}},
			`{"topic":"a"}`},
	}
	for _, c := range cases {
		m, err := fromFedoraMessaging(&c.d, counter, now)
		switch {
		case c.want == "" && err == nil:
			t.Errorf("%s: accepted: %s", c.name, m.Body)
		case c.want == "" && !errors.Is(err, errFormat):
			t.Errorf("%s: error does not wrap errFormat: %v", c.name, err)
		case c.want != "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && string(m.Body) != c.want:
			t.Errorf("%s: got\n%s\nwant\n%s", c.name, m.Body, c.want)
		}
	}
}

func fmOptions(t testing.TB) Options {
	o := testOptions(t, plainURL)
	o.Format = FormatFedoraMessaging
	return o
}

// TestFedoraMessagingVectorsRoundTrip: every canonical signed vector,
// published by a fedora-messaging-format transport through RabbitMQ,
// reaches a fedora-messaging-format subscriber byte for byte (so its
// signature still verifies).
func TestFedoraMessagingVectorsRoundTrip(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQP)
	pub, sub := newT(t, fmOptions(t)), newT(t, fmOptions(t))
	vectors := canonicalVectors(t)
	topic := uniqueTopic(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*transport.Message
	for name, data := range vectors {
		msgs = append(msgs, &transport.Message{Topic: topic + "." + strings.TrimSuffix(name, ".json"), Body: data})
	}
	if err := pub.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	for range msgs {
		select {
		case d := <-ch:
			name := strings.TrimPrefix(d.Message.Topic, topic+".") + ".json"
			want, ok := vectors[name]
			if !ok {
				t.Fatalf("unexpected topic %q", d.Message.Topic)
			}
			if !bytes.Equal(d.Message.Body, want) {
				t.Errorf("%s: got\n%s\nwant\n%s", name, d.Message.Body, want)
			}
			env, _ := message.DecodeObject(want)
			if id, _ := env["msg_id"].(string); d.Message.ID != id {
				t.Errorf("%s: ID %q, want %q", name, d.Message.ID, id)
			}
			delete(vectors, name)
			if err := d.Ack(ctx); err != nil {
				t.Error(err)
			}
		case <-ctx.Done():
			t.Fatalf("%d vectors did not arrive: %v", len(vectors), ctx.Err())
		}
	}
}

var sentAtRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$`)

// TestFedoraMessagingWire: what a plain amqp091-go consumer sees of a
// fedora-messaging-format publish (spec §10.1), and what a
// fedora-messaging-format subscriber makes of a plain fedora-messaging
// message (spec §10.2).
func TestFedoraMessagingWire(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQP)
	tr := newT(t, fmOptions(t))
	raw := rawChannel(t)
	topic := uniqueTopic(t) + ".wire"
	deliveries := rawConsumer(t, raw, topic)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env := []byte(`{"crypto":"x509","headers":{"big":123456789012345678901,"n":7,"s":"v"},"i":3,"msg":{"b":[1,2.5,"x"],"a":"caf\u00e9"},"msg_id":"2026-abc","signature":"c2ln","timestamp":1795604908,"topic":"org.fedoraproject.dev.x","username":"fedmsg"}`)
	if err := tr.Publish(ctx, &transport.Message{Topic: topic, Body: env, ID: "ignored", Headers: map[string]string{"x-origin": "zmq", HeaderSchema: "spoof"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-deliveries:
		wantBody := `{"a": "caf\u00e9", "b": [1, 2.5, "x"]}`
		if d.RoutingKey != topic || string(d.Body) != wantBody || d.MessageId != "2026-abc" ||
			d.ContentType != "application/json" || d.ContentEncoding != "utf-8" || d.DeliveryMode != amqp091.Persistent {
			t.Errorf("on the wire: key %q body %s id %q type %q encoding %q mode %d",
				d.RoutingKey, d.Body, d.MessageId, d.ContentType, d.ContentEncoding, d.DeliveryMode)
		}
		h := d.Headers
		if h[HeaderSchema] != "base.message" || h[HeaderSeverity] != int32(20) || !sentAtRE.MatchString(h[HeaderSentAt].(string)) {
			t.Errorf("fedora-messaging headers: %v", h)
		}
		if h["x-origin"] != "zmq" || h["s"] != "v" || h["n"] != int64(7) {
			t.Errorf("carried headers: %v", h)
		}
		if _, ok := h["big"]; ok {
			t.Errorf("an integer beyond int64 became a header: %v", h["big"])
		}
		wantEnv := `{"crypto":"x509","headers":{"big":123456789012345678901,"n":7,"s":"v"},"i":3,"msg_id":"2026-abc","signature":"c2ln","timestamp":1795604908,"topic":"org.fedoraproject.dev.x","username":"fedmsg"}`
		if h[HeaderEnvelope] != wantEnv {
			t.Errorf("%s = %v\nwant %s", HeaderEnvelope, h[HeaderEnvelope], wantEnv)
		}
	case <-ctx.Done():
		t.Fatal("the raw consumer got nothing")
	}

	// A plain fedora-messaging message, as fedora-messaging itself sends it.
	ch, err := tr.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	pubs := []amqp091.Publishing{
		{Body: []byte(`not json`), MessageId: "bad"}, // rejected, not requeued
		{
			ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2,
			MessageId: "6f3c1c1e-0000-4000-8000-000000000001",
			Headers: amqp091.Table{HeaderSchema: "base.message", HeaderSentAt: "2026-05-06T07:08:09+00:00",
				HeaderSeverity: int32(20), "priority": int32(0)},
			Body: []byte(`{"package": "kernel", "version": 6.1}`),
		},
	}
	for _, p := range pubs {
		if err := raw.PublishWithContext(ctx, "amq.topic", topic, false, false, p); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case d := <-ch:
		year := strconv.Itoa(time.Now().UTC().Year())
		want := `{"i":1,"msg":{"package":"kernel","version":6.1},"msg_id":"` + year + `-6f3c1c1e-0000-4000-8000-000000000001","timestamp":1778051289,"topic":"` + topic + `","username":"amqp-bridge"}`
		if string(d.Message.Body) != want || d.Message.ID != year+"-6f3c1c1e-0000-4000-8000-000000000001" || d.Message.Topic != topic {
			t.Errorf("received %s (id %q)\nwant %s", d.Message.Body, d.Message.ID, want)
		}
		if err := d.Ack(ctx); err != nil {
			t.Error(err)
		}
	case <-ctx.Done():
		t.Fatal("the subscription got nothing")
	}
}

// FuzzFedoraMessagingDecode: a delivery from the network (body, envelope
// header, message_id, sent-at) becomes a canonical envelope or an error
// wrapping errFormat, never a panic; and an envelope that goes out in
// the fedora-messaging form comes back as its canonical JSON.
func FuzzFedoraMessagingDecode(f *testing.F) {
	f.Add([]byte(`{"a": 1}`), `{"topic":"t","i":1}`, true, "2026-x", "2026-05-06T07:08:09+00:00")
	f.Add([]byte(`"s"`), ``, false, "abc", "")
	f.Add([]byte(``), `{}`, true, "", "junk")
	f.Add([]byte(`[1e400, -0, 1E-7]`), `{"msg":1}`, true, "12345", "")
	f.Add([]byte("\xff"), `{"\ud800":NaN}`, true, "\x00", "2026-13-40T99:99:99Z")
	f.Fuzz(func(t *testing.T, body []byte, envHeader string, withHeader bool, id, sentAt string) {
		h := amqp091.Table{HeaderSentAt: sentAt}
		if withHeader {
			h[HeaderEnvelope] = envHeader
		}
		now := time.Unix(1795604908, 0)
		d := &amqp091.Delivery{RoutingKey: "k", MessageId: id, Headers: h, Body: body}
		m, err := fromFedoraMessaging(d, func() int64 { return 1 }, now)
		if err != nil {
			if !errors.Is(err, errFormat) {
				t.Fatalf("error does not wrap errFormat: %v", err)
			}
		} else {
			c, err := message.CanonicalizeBytes(m.Body)
			if err != nil || !bytes.Equal(c, m.Body) {
				t.Fatalf("body is not a canonical envelope: %s (%v)", m.Body, err)
			}
			if _, err := message.DecodeObject(m.Body); err != nil {
				t.Fatalf("body is not an object: %v", err)
			}
		}
		// The body as a whole envelope: out and back.
		c, err := message.CanonicalizeBytes(body)
		if err != nil {
			return
		}
		p, err := fedoraPublishing(&transport.Message{Topic: "k", Body: c, ID: id}, now)
		if err != nil {
			if !errors.Is(err, transport.ErrBadMessage) {
				t.Fatalf("publish error does not wrap ErrBadMessage: %v", err)
			}
			return
		}
		back, err := fromFedoraMessaging(&amqp091.Delivery{RoutingKey: "k", Headers: p.Headers, Body: p.Body}, func() int64 { return 1 }, now)
		if err != nil {
			t.Fatalf("own publishing refused: %v", err)
		}
		if !bytes.Equal(back.Body, c) {
			t.Fatalf("round trip\n%s\nwant\n%s", back.Body, c)
		}
	})
}
