package stomp

import (
	"strings"

	"github.com/go-stomp/stomp/v3/frame"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/transport"
)

// flavor is the broker family, told apart by the CONNECTED frame's server
// header, because STOMP leaves wildcard syntax to each broker.
type flavor int

const (
	// flavorGeneric: an unknown broker. Its wildcards are assumed to be
	// RabbitMQ's ('#' for any words), which ActiveMQ Artemis shares.
	flavorGeneric flavor = iota
	flavorRabbitMQ
	flavorActiveMQ // ActiveMQ "Classic" 5.x: '>' for any words
)

func (f flavor) String() string {
	switch f {
	case flavorRabbitMQ:
		return "RabbitMQ"
	case flavorActiveMQ:
		return "ActiveMQ"
	}
	return "generic"
}

// detectFlavor reads a server header such as "RabbitMQ/3.10.8" or
// "ActiveMQ/5.17.2" (name, then optional "/version" and comments).
func detectFlavor(server string) flavor {
	name := server
	if i := strings.IndexAny(name, "/ "); i >= 0 {
		name = name[:i]
	}
	switch {
	case strings.EqualFold(name, "RabbitMQ"):
		return flavorRabbitMQ
	case strings.EqualFold(name, "ActiveMQ"):
		return flavorActiveMQ
	}
	return flavorGeneric
}

// anyWords is the wildcard matching one or more trailing words.
func (f flavor) anyWords() string {
	if f == flavorActiveMQ {
		return ">"
	}
	return "#"
}

const topicPrefix = "/topic/"

// everything returns the destinations that together receive every topic.
func (f flavor) everything() []string { return []string{topicPrefix + f.anyWords()} }

// activeMQNoAdvisories is the selector of ActiveMQ subscriptions that
// could match its advisory topics (ActiveMQ.Advisory.*: only those with
// no whole leading word). ActiveMQ must convert advisory messages to
// reach a STOMP client, and when it cannot (Debian's package lacks the
// XStream library it needs) the connection stops delivering anything.
// We never send a "type" header, so our messages pass.
const activeMQNoAdvisories = "JMSType IS NULL OR JMSType <> 'Advisory'"

// topicDestination is where a message on topic is sent.
func topicDestination(topic string) string { return topicPrefix + topic }

// badTopic says why topic cannot be sent as a /topic/ destination, or "".
// RabbitMQ refuses '/' inside a topic destination with an ERROR (which
// would cost the connection), so such topics are refused up front.
func badTopic(topic string) string {
	switch {
	case topic == "":
		return "empty topic"
	case strings.ContainsRune(topic, '/'):
		return "a topic with '/' cannot be a STOMP /topic/ destination"
	case strings.ContainsRune(topic, 0):
		return "a topic with NUL"
	}
	return ""
}

// wordPrefix returns the whole words of p's literal prefix that may go
// into a broker destination: the words each followed by '.', up to (not
// including) the first word that is empty or holds a character a broker
// could read as syntax. The result, followed by ".<anyWords>" (or alone
// anyWords when ""), selects a superset of what p matches, on every
// broker: p's matches all start with those words and at least one more.
func wordPrefix(p message.Pattern) string {
	words := p.WholeWords()
	keep := 0
	for _, w := range words {
		if w == "" || strings.ContainsAny(w, "/%*#>\\") || hasControl(w) {
			break
		}
		keep++
	}
	return strings.Join(words[:keep], ".")
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// subscribeDestinations returns the broker destinations that together
// receive every topic one of patterns matches, without overlap (a
// destination covered by a broader one is dropped), so no topic arrives
// twice on one subscription.
func subscribeDestinations(f flavor, patterns []message.Pattern) []string {
	if len(patterns) == 0 {
		return f.everything()
	}
	var words []string
	for _, p := range patterns {
		words = append(words, wordPrefix(p))
	}
	covered := func(w, by string) bool { return by == "" || strings.HasPrefix(w+".", by+".") }
	var out []string
	for i, w := range words {
		redundant := false
		for j, by := range words {
			if i == j {
				continue
			}
			// drop w when another covers it; of equal ones keep the first
			if covered(w, by) && (w != by || j < i) {
				redundant = true
				break
			}
		}
		if redundant {
			continue
		}
		if w == "" {
			out = append(out, f.everything()...)
		} else {
			out = append(out, topicPrefix+w+"."+f.anyWords())
		}
	}
	return out
}

// topicOf maps a MESSAGE frame's destination to the fedmsg topic. As
// fedmsg does, original-destination wins over destination when present
// (brokers set it when a message was moved, e.g. to a DLQ). Only topic
// destinations carry a topic: "/topic/<t>", or RabbitMQ's
// "/exchange/amq.topic/<t>".
//
// RabbitMQ percent-encodes the routing key in the destinations it sends
// ("café" arrives as "caf%C3%A9", "%" as "%25"), so on RabbitMQ the
// topic is decoded.
func topicOf(h *frame.Header, f flavor) (string, bool) {
	for _, name := range []string{"original-destination", frame.Destination} {
		d, ok := h.Contains(name)
		if !ok {
			continue
		}
		for _, pfx := range []string{topicPrefix, "/exchange/amq.topic/"} {
			if t, ok := strings.CutPrefix(d, pfx); ok && t != "" {
				if f == flavorRabbitMQ {
					t = percentDecode(t)
				}
				return t, true
			}
		}
	}
	return "", false
}

// percentDecode decodes %XX escapes; a '%' not followed by two hex
// digits stays as it is.
func percentDecode(s string) string {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b = append(b, hi<<4|lo)
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// idHeader carries Message.ID, so a consumer knows the msg_id without
// parsing the body.
const idHeader = "fedmsg-msg-id"

// reservedHeaders are STOMP's own headers and those brokers give meaning
// to (or add): they are never sent from Message.Headers, which must not
// change how a frame is handled, and never reported in received
// Message.Headers. "redelivered" is kept: it is information a consumer
// may want.
var reservedHeaders = map[string]bool{
	frame.ContentLength: true, frame.ContentType: true, frame.Receipt: true,
	frame.AcceptVersion: true, frame.Host: true, frame.Version: true,
	frame.Login: true, frame.Passcode: true, frame.HeartBeat: true,
	frame.Session: true, frame.Server: true, frame.Destination: true,
	frame.Id: true, frame.Ack: true, frame.Transaction: true,
	frame.ReceiptId: true, frame.Subscription: true, frame.MessageId: true,
	frame.Message: true,
	"persistent":  true, "original-destination": true, "reply-to": true,
	"expires": true, "priority": true, "timestamp": true, "type": true,
	"correlation-id": true, "requeue": true, "prefetch-count": true,
	"durable": true, "auto-delete": true, "exclusive": true,
	"x-queue-name": true, idHeader: true,
}

// messageFromFrame builds a Message from a MESSAGE frame: ok is false
// when the frame carries no topic destination.
func messageFromFrame(f *frame.Frame, fl flavor) (m *transport.Message, ok bool) {
	topic, ok := topicOf(f.Header, fl)
	if !ok {
		return nil, false
	}
	m = &transport.Message{Topic: topic, Body: f.Body}
	if m.Body == nil {
		m.Body = []byte{}
	}
	for i := range f.Header.Len() {
		k, v := f.Header.GetAt(i)
		if k == idHeader && m.ID == "" {
			m.ID = v
			continue
		}
		if reservedHeaders[k] || k == "" {
			continue
		}
		if _, dup := m.Headers[k]; dup {
			continue // STOMP: the first of repeated headers wins
		}
		if m.Headers == nil {
			m.Headers = map[string]string{}
		}
		m.Headers[k] = v
	}
	return m, true
}
