package stomp

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gofedmsg/fedmsg/message"
)

// FuzzReadFrame feeds arbitrary bytes from "the broker" through the frame
// reader and the MESSAGE decoding (topic, headers) for every flavour: no
// panic, limits hold, and the decoded topic is never empty.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte("MESSAGE\nsubscription:s1\ndestination:/topic/zz.caf%C3%A9.x\nmessage-id:T_s1@@session@@1\nredelivered:false\ncontent-length:5\n\nhello\x00\n"))
	f.Add([]byte("\n\nMESSAGE\ndestination:/topic/a/b.c\nmessage-id:ID\\cvm-1\\c6\nx\\\\y:1\\n2\\r\\c\\t\n\nbody\x00"))
	f.Add([]byte("CONNECTED\nserver:RabbitMQ/3.10.8\nheart-beat:1000,1000\nversion:1.2\n\n\x00"))
	f.Add([]byte("ERROR\nmessage:Unknown destination\ncontent-length:3\n\nabc\x00RECEIPT\nreceipt-id:r1\n\n\x00"))
	f.Add([]byte("MESSAGE\ncontent-length:99999999999\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := newFrameReader(bytes.NewReader(data))
		for range 8 {
			fr, err := fr.read()
			if err != nil {
				return
			}
			if len(fr.Body) > maxBody || fr.Header.Len() > maxHeaders {
				t.Fatalf("limits exceeded: %d body bytes, %d headers", len(fr.Body), fr.Header.Len())
			}
			for _, fl := range []flavor{flavorGeneric, flavorRabbitMQ, flavorActiveMQ} {
				m, ok := messageFromFrame(fr, fl)
				if ok && m.Topic == "" {
					t.Fatal("empty topic accepted")
				}
			}
		}
	})
}

// FuzzHeaderEscaping: STOMP 1.2 escaping round-trips, and what is
// escaped holds no line break or bare colon.
func FuzzHeaderEscaping(f *testing.F) {
	for _, s := range []string{"", "plain", "a:b", "line\nbreak\r", `back\slash`, `\c`, "café ☃"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := appendEscaped(nil, s)
		if bytes.ContainsAny(e, "\r\n:") {
			t.Fatalf("escaped %q as %q", s, e)
		}
		if got := unescape(e); got != s {
			t.Fatalf("round trip of %q: %q via %q", s, got, e)
		}
		_ = unescape([]byte(s)) // any input, no panic
		_ = percentDecode(s)
		_ = detectFlavor(s)
	})
}

// FuzzSubscribeSuperset: the broker destinations chosen for a pattern
// receive every topic the pattern matches, on every flavour (then the
// pattern filters in-process), and name no syntax a broker would misread.
func FuzzSubscribeSuperset(f *testing.F) {
	for _, c := range [][2]string{
		{"org.fedoraproject.prod.bodhi", "org.fedoraproject.prod.bodhix"},
		{"B.*.bodhi.update", "B.a.b.bodhi.update"},
		{"B.wiki[", "B.wiki["},
		{"B.caf?.*", "B.café.ümläut"},
		{"", "x"},
		{"a..b.", "a..b.c"},
		{"x/y.z.", "x/y.z.w"},
	} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		p, err := message.CompilePattern(pattern)
		if err != nil {
			return
		}
		w := wordPrefix(p)
		if strings.ContainsAny(w, "/%*#>\\") || strings.HasPrefix(w, ".") || strings.HasSuffix(w, ".") || strings.Contains(w, "..") {
			t.Fatalf("pattern %q: destination words %q", pattern, w)
		}
		if p.Match(topic) && w != "" && !strings.HasPrefix(topic, w+".") {
			t.Fatalf("pattern %q matches %q but the broker would be subscribed to %q", pattern, topic, w)
		}
		for _, fl := range []flavor{flavorGeneric, flavorRabbitMQ, flavorActiveMQ} {
			if d := subscribeDestinations(fl, []message.Pattern{p}); len(d) != 1 {
				t.Fatalf("%v: %d destinations for one pattern", fl, len(d))
			}
		}
	})
}

func TestSubscribeDestinations(t *testing.T) {
	mk := func(ss ...string) []message.Pattern {
		var ps []message.Pattern
		for _, s := range ss {
			p, _ := message.CompilePattern(s)
			ps = append(ps, p)
		}
		return ps
	}
	for _, c := range []struct {
		fl       flavor
		patterns []string
		want     string
	}{
		{flavorRabbitMQ, nil, "/topic/#"},
		{flavorActiveMQ, nil, "/topic/>"},
		{flavorRabbitMQ, []string{"a.b.c"}, "/topic/a.b.#"},
		{flavorActiveMQ, []string{"a.b.", "a.b.c.", "x.*"}, "/topic/a.b.> /topic/x.>"},
		{flavorRabbitMQ, []string{"a.b.", "a.b."}, "/topic/a.b.#"},
		{flavorRabbitMQ, []string{"a.b.", "*.x"}, "/topic/#"},
		{flavorGeneric, []string{"a.b%c.d."}, "/topic/a.#"},
	} {
		if got := strings.Join(subscribeDestinations(c.fl, mk(c.patterns...)), " "); got != c.want {
			t.Errorf("%v %q: %q, want %q", c.fl, c.patterns, got, c.want)
		}
	}
	for s, want := range map[string]flavor{"RabbitMQ/3.10.8": flavorRabbitMQ, "ActiveMQ/5.17.2": flavorActiveMQ, "ActiveMQ-Artemis/2.30": flavorGeneric, "": flavorGeneric} {
		if got := detectFlavor(s); got != want {
			t.Errorf("detectFlavor(%q) = %v, want %v", s, got, want)
		}
	}
}
