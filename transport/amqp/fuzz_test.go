package amqp

import (
	"strings"
	"testing"
	"unicode/utf8"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/gofedmsg/fedmsg/message"
)

// amqpTopicMatch is AMQP 0-9-1's topic exchange rule, written from the
// spec for the test: words split on '.', '*' is one word, '#' zero or
// more. Dynamic programming keeps many '#' words linear.
func amqpTopicMatch(key, topic string) bool {
	k, w := strings.Split(key, "."), strings.Split(topic, ".")
	// m[j]: k[:i] matches w[:j]
	m := make([]bool, len(w)+1)
	m[0] = true
	for _, kw := range k {
		next := make([]bool, len(w)+1)
		for j := 0; j <= len(w); j++ {
			switch kw {
			case "#":
				next[j] = m[j] || (j > 0 && next[j-1])
			case "*":
				next[j] = j > 0 && m[j-1]
			default:
				next[j] = j > 0 && m[j-1] && w[j-1] == kw
			}
		}
		m = next
	}
	return m[len(w)]
}

func TestAMQPTopicMatch(t *testing.T) {
	for _, c := range []struct {
		key, topic string
		want       bool
	}{
		{"#", "a.b", true}, {"#", "", true}, {"a.#", "a", true}, {"a.#", "a.b.c", true},
		{"a.#", "b.a", false}, {"a.*", "a", false}, {"a.*", "a.b", true}, {"a.*", "a.b.c", false},
		{"a.#.c", "a.c", true}, {"a.#.c", "a.x.y.c", true}, {"a.b", "a.b", true}, {"a.b", "a.bc", false},
	} {
		if got := amqpTopicMatch(c.key, c.topic); got != c.want {
			t.Errorf("amqpTopicMatch(%q, %q) = %v", c.key, c.topic, got)
		}
	}
}

// FuzzBindingKeysSuperset: whatever a pattern matches, one of its binding
// keys routes to the queue; otherwise a subscriber would silently miss
// messages that the in-process filter would have accepted.
func FuzzBindingKeysSuperset(f *testing.F) {
	for _, s := range [][2]string{
		{"org.fedoraproject.prod.bodhi", "org.fedoraproject.prod.bodhi.update"},
		{"org.fedoraproject.prod.bodhi", "org.fedoraproject.prod.bodhix"},
		{"org.fedoraproject.*.bodhi.update", "org.fedoraproject.a.b.bodhi.update"},
		{"a.b.", "a.b.c"},
		{"a?c", "a.c"},
		{"x.[!x]y", "x.ay"},
		{"x.wiki[", "x.wiki["},
		{"a.#.b", "a.#.b.c"},
		{"a..b", "a..bc"},
		{"", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		p, err := message.CompilePattern(pattern)
		if err != nil {
			return // refused by Subscribe
		}
		keys := bindingKeys([]string{pattern})
		for _, k := range keys {
			if len(k) > 255 || !utf8.ValidString(k) && utf8.ValidString(pattern) {
				t.Fatalf("key %q cannot be used", k)
			}
		}
		if len(topic) > 255 || !p.Match(topic) {
			return
		}
		for _, k := range keys {
			if amqpTopicMatch(k, topic) {
				return
			}
		}
		t.Fatalf("pattern %q matches topic %q, but no binding key %q routes it", pattern, topic, keys)
	})
}

// FuzzHeadersFromTable: a header table from the network (any value
// types) gives exactly its string fields, and never panics.
func FuzzHeadersFromTable(f *testing.F) {
	f.Add("x-origin", "zmq", int64(3), []byte("raw"), true)
	f.Add("", "", int64(0), []byte(nil), false)
	f.Add("caf\u00e9", "\xff\xfe", int64(-1), []byte{0}, true)
	f.Fuzz(func(t *testing.T, key, value string, n int64, raw []byte, b bool) {
		table := amqp091.Table{
			key:        value,
			key + ".n": n,
			key + ".b": b,
			key + ".r": raw,
			key + ".t": amqp091.Table{key: value},
			key + ".a": []any{value, n},
			key + ".v": nil,
		}
		h := headersFromTable(table)
		want := 0
		for k, v := range table {
			if s, ok := v.(string); ok {
				want++
				if h[k] != s {
					t.Fatalf("header %q = %q, want %q", k, h[k], s)
				}
			}
		}
		if len(h) != want {
			t.Fatalf("got %d headers, want %d: %v", len(h), want, h)
		}
		m := toMessage(&amqp091.Delivery{RoutingKey: key, Body: raw, MessageId: value, Headers: table})
		if m.Topic != key || string(m.Body) != string(raw) || m.ID != value {
			t.Fatalf("toMessage: %+v", m)
		}
	})
}
