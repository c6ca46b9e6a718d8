// Package consumer runs fedmsg consumers: handlers that receive the
// messages of chosen topics from any transport, after the checks fedmsg's
// FedmsgConsumer makes before dispatch (spec §8.3).
//
// A Consumer names its topics (message.Pattern: a plain prefix, or an
// fnmatch glob over the whole topic; none, "" or "*" selects everything),
// its handler, and optionally its own validate_signatures. A Hub reads one
// subscription of a transport.Transport (the union of every consumer's
// topics) and hands each message to every consumer whose topics match it:
//
//  1. A body that is not a JSON object, or has no "topic" key, is wrapped
//     as {"topic": <transport topic>, "msg": <body>} (an unparsable body
//     is kept as text). This is how fedmsg accepts non-fedmsg STOMP traffic.
//  2. The consumer's effective validate_signatures is its own value when
//     set (true or false), else the configuration's (Options.ValidateSignatures).
//     This tri-state is the fix of CVE-2017-1000001: a consumer that says
//     nothing follows the configuration, it is never silently unvalidated.
//     When it is false the message is accepted.
//  3. The transport topic must equal the envelope's "topic".
//  4. The envelope must validate (Options.Validator: CA chain, CRL,
//     signature, routing policy).
//
// A rejected message is logged, counted (Stats) and never reaches the
// handler; its delivery is acknowledged, as fedmsg does over STOMP. An
// accepted one is acknowledged once every consumer it went to returned
// nil, and negatively acknowledged (redeliverable where the transport can
// redeliver) when one of them returned an error. Each consumer handles its
// messages one at a time, in the order they arrived.
package consumer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gofedmsg/fedmsg/message"
)

// Handler handles one accepted message. An error makes the message's
// delivery a Nack (redelivered where the transport can); wrap
// transport.ErrPermanent to ask that it not be redelivered.
type Handler func(ctx context.Context, m *Message) error

// Consumer is one consumer: what it wants and what it does with it.
type Consumer struct {
	// Name identifies the consumer in logs, errors and Stats. Required,
	// unique within a Hub.
	Name string
	// Topics are message.Pattern strings; none, "" or "*" is every topic.
	Topics []string
	// ValidateSignatures is the consumer's own validate_signatures: nil
	// (the default) follows the configuration's, true or false overrides
	// it. See the package documentation and CVE-2017-1000001.
	ValidateSignatures *bool
	// Handler is called for every accepted message. Required.
	Handler Handler
}

// Bool returns a pointer to b, for Consumer.ValidateSignatures.
func Bool(b bool) *bool { return &b }

// Message is what a handler receives.
type Message struct {
	// Topic is the topic the transport delivered the message under (the
	// ZeroMQ frame 0, the STOMP destination, the AMQP routing key).
	Topic string
	// Body is the envelope JSON: the bytes received, verbatim, or for a
	// wrapped body (Wrapped) the canonical JSON of the wrapper.
	Body []byte
	// Envelope is Body decoded (numbers keep their text).
	Envelope map[string]any
	// Wrapped says the body was not a fedmsg envelope and was wrapped as
	// {"topic": Topic, "msg": <body>} (spec §8.3 step 1).
	Wrapped bool
	// Raw is the body as received; the same bytes as Body unless Wrapped.
	Raw []byte
	// Headers are the transport's headers (STOMP, AMQP), never signed.
	Headers map[string]string
	// Source names where the message came from (endpoint URL, queue).
	Source string
	// Validated says the signature was checked and found good.
	Validated bool
}

// JSONLine returns Body as one line of JSON (without the newline): Body
// itself when it holds no raw line break, which is always the case for
// the canonical JSON fedmsg publishes, else Body with its insignificant
// whitespace removed (json.Compact keeps strings and numbers as written).
func (m *Message) JSONLine() []byte {
	if !bytes.ContainsAny(m.Body, "\r\n") {
		return m.Body
	}
	var b bytes.Buffer
	if err := json.Compact(&b, m.Body); err != nil {
		// Not reached for a body that decoded; never emit a broken line.
		return bytes.Map(func(r rune) rune {
			if r == '\r' || r == '\n' {
				return ' '
			}
			return r
		}, m.Body)
	}
	return b.Bytes()
}

// Errors a Consumer or a Hub can be refused with.
var (
	ErrNoName      = errors.New("consumer: a consumer needs a name")
	ErrNoHandler   = errors.New("consumer: a consumer needs a handler")
	ErrDuplicate   = errors.New("consumer: two consumers have the same name")
	ErrNoValidator = errors.New("consumer: signature validation is on but no validator was given")
	ErrNoConsumers = errors.New("consumer: no consumers")
)

// Reasons a message is rejected before dispatch, as counted in Stats.
const (
	RejectTopicMismatch = "topic-mismatch" // transport topic differs from the envelope's
	RejectSignature     = "signature"      // the envelope did not validate
	RejectMalformed     = "malformed"      // the body could not be wrapped
)

// ErrTopicMismatch is fedmsg's "Topic envelope mismatch."
var ErrTopicMismatch = errors.New("consumer: topic envelope mismatch")

// decodeEnvelope is step 1 of spec §8.3: body as an envelope, wrapped when
// it is not a JSON object with a "topic" key. An unparsable body becomes a
// string, as moksha's STOMP client keeps it as text; an empty one is {}.
func decodeEnvelope(topic string, body []byte) (env map[string]any, out []byte, wrapped bool, err error) {
	var v any
	if len(bytes.TrimSpace(body)) == 0 {
		v = map[string]any{}
	} else if v, err = message.Decode(body); err != nil {
		v = string(body)
	}
	if obj, ok := v.(map[string]any); ok {
		if _, has := obj[message.FieldTopic]; has {
			return obj, body, false, nil
		}
	}
	env = map[string]any{message.FieldTopic: topic, "msg": v}
	out, err = message.Canonical(env)
	if err != nil {
		return nil, nil, true, fmt.Errorf("consumer: wrapping a non-envelope body: %w", err)
	}
	return env, out, true, nil
}
