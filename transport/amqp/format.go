package amqp

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/transport"
)

// Message formats on the wire (Options.Format, amqp_format).
const (
	// FormatFedmsg: the body is the fedmsg envelope, verbatim.
	FormatFedmsg = "fedmsg"
	// FormatFedoraMessaging: the body is the envelope's msg and the
	// properties and headers are fedora-messaging's (spec §10.1); the rest
	// of the envelope rides in HeaderEnvelope. See the package comment.
	FormatFedoraMessaging = "fedora-messaging"
)

// Headers of the fedora-messaging format.
const (
	// HeaderEnvelope holds the canonical JSON (a long string) of the
	// envelope without its msg: topic, timestamp, msg_id, i, username,
	// crypto, signature, certificate and any other field.
	HeaderEnvelope = "x-fedmsg-envelope"
	// fedora-messaging's own headers (spec §10.1 step 6).
	HeaderSchema   = "fedora_messaging_schema"
	HeaderSentAt   = "sent-at"
	HeaderSeverity = "fedora_messaging_severity"

	fmSchema   = "base.message"
	fmSeverity = int32(20) // logging.INFO, what fedora-messaging sends
	// fmUsername marks envelopes built from plain fedora-messaging
	// messages, as fedmsg-migration-tools' AMQP -> ZMQ bridge does (its
	// ZMQ -> AMQP direction drops them: loop prevention, spec §10).
	fmUsername   = "amqp-bridge"
	sentAtLayout = "2006-01-02T15:04:05-07:00"
)

// errFormat marks a delivery that cannot be turned into an envelope; it
// is rejected without requeue (it would fail again).
var errFormat = errors.New("amqp: fedora-messaging message cannot become an envelope")

// fedoraPublishing maps a message whose body is a fedmsg envelope to its
// fedora-messaging form (spec §10.1 step 6):
//
//   - body: json.dumps(msg), Python's plain separators ", " and ": ", keys
//     sorted (as fedmsg-migration-tools produces from a canonical frame),
//     ensure_ascii. Unlike fedora-messaging, a msg that is not an object
//     is sent too (its schema would refuse it), so every envelope crosses;
//     an envelope without msg gets an empty body;
//   - content_type application/json, content_encoding utf-8, delivery_mode
//     2, message_id = msg_id (m.ID when the envelope has none);
//   - headers: the envelope's "headers" object (the values AMQP can carry),
//     then m.Headers, then fedora_messaging_schema "base.message", sent-at
//     (UTC now, seconds, +00:00) and fedora_messaging_severity 20, then
//     x-fedmsg-envelope.
func fedoraPublishing(m *transport.Message, now time.Time) (amqp091.Publishing, error) {
	env, err := message.DecodeObject(m.Body)
	if err != nil {
		return amqp091.Publishing{}, fmt.Errorf("%w: fedora-messaging format needs a JSON envelope: %v", transport.ErrBadMessage, err)
	}
	msg, hasMsg := env[message.FieldMsg]
	delete(env, message.FieldMsg)
	rest, err := message.Canonical(env)
	if err != nil {
		return amqp091.Publishing{}, fmt.Errorf("%w: %v", transport.ErrBadMessage, err)
	}
	var body []byte
	if hasMsg {
		c, err := message.Canonical(msg)
		if err != nil {
			return amqp091.Publishing{}, fmt.Errorf("%w: %v", transport.ErrBadMessage, err)
		}
		body = pythonSpacing(c)
	}
	id := m.ID
	if s, ok := env[message.FieldMsgID].(string); ok {
		id = s
	}
	if len(id) > 255 {
		return amqp091.Publishing{}, fmt.Errorf("%w: msg_id of %d bytes (AMQP message_id is at most 255)", transport.ErrBadMessage, len(id))
	}
	h := amqp091.Table{}
	if eh, ok := env["headers"].(map[string]any); ok {
		for k, v := range eh {
			if av, ok := toAMQPValue(v, 0); ok && len(k) <= 255 {
				h[k] = av
			}
		}
	}
	for k, v := range m.Headers {
		h[k] = v
	}
	h[HeaderSchema] = fmSchema
	h[HeaderSentAt] = now.UTC().Format(sentAtLayout)
	h[HeaderSeverity] = fmSeverity
	h[HeaderEnvelope] = string(rest)
	return amqp091.Publishing{
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		DeliveryMode:    amqp091.Persistent,
		MessageId:       id,
		Headers:         h,
		Body:            body,
	}, nil
}

// pythonSpacing turns canonical JSON into Python's json.dumps form with
// the same key order: a space after every ',' and ':' outside strings.
// Canonical JSON is 7-bit ASCII with every '"' inside a string escaped.
func pythonSpacing(c []byte) []byte {
	out := make([]byte, 0, len(c)+len(c)/8)
	in := false
	for i := 0; i < len(c); i++ {
		b := c[i]
		out = append(out, b)
		switch {
		case in && b == '\\':
			i++
			if i < len(c) {
				out = append(out, c[i])
			}
		case b == '"':
			in = !in
		case !in && (b == ',' || b == ':'):
			out = append(out, ' ')
		}
	}
	return out
}

// toAMQPValue converts a decoded JSON value to a field-table value; false
// for what AMQP cannot carry (integers beyond int64, nesting too deep).
func toAMQPValue(v any, depth int) (any, bool) {
	if depth > 32 {
		return nil, false
	}
	switch x := v.(type) {
	case nil, bool, string:
		return x, true
	case message.Number:
		if x.IsFloat() {
			f, err := x.Float64()
			return f, err == nil
		}
		n, err := x.Int64()
		return n, err == nil
	case map[string]any:
		t := make(amqp091.Table, len(x))
		for k, e := range x {
			av, ok := toAMQPValue(e, depth+1)
			if !ok || len(k) > 255 {
				return nil, false
			}
			t[k] = av
		}
		return t, true
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			av, ok := toAMQPValue(e, depth+1)
			if !ok {
				return nil, false
			}
			a[i] = av
		}
		return a, true
	}
	return nil, false
}

// fromFedoraMessaging turns a delivery of the fedora-messaging format into
// a message whose body is a canonical fedmsg envelope.
//
// With x-fedmsg-envelope (published by gofedmsg) the envelope is that
// header's object plus msg decoded from the body (no msg when the body is
// empty): for an envelope that was canonical JSON, the very bytes that
// were published, so signatures still verify.
//
// Without it (a plain fedora-messaging publisher) the envelope is built as
// fedmsg-migration-tools' AMQP -> ZMQ bridge does (spec §10.2): topic =
// routing key, msg = the decoded body, msg_id = message_id with "<UTC
// year>-" put in front unless it starts with four digits and '-',
// i = a counter of the transport from 1, username "amqp-bridge". Two
// differences: timestamp is sent-at when that header parses (the
// publication time), else the time of receipt; and a message without
// message_id is kept, with no msg_id, instead of dropped. AMQP headers
// are not copied into the envelope (they stay in Message.Headers, string
// fields only).
//
// A body that is not JSON, or an x-fedmsg-envelope that is not a JSON
// object, is an error wrapping errFormat.
func fromFedoraMessaging(d *amqp091.Delivery, counter func() int64, now time.Time) (*transport.Message, error) {
	m := &transport.Message{Topic: d.RoutingKey, ID: d.MessageId, Headers: headersFromTable(d.Headers)}
	delete(m.Headers, HeaderEnvelope)
	var env map[string]any
	switch raw := d.Headers[HeaderEnvelope].(type) {
	case string, []byte:
		var b []byte
		if s, ok := raw.(string); ok {
			b = []byte(s)
		} else {
			b = raw.([]byte)
		}
		var err error
		if env, err = message.DecodeObject(b); err != nil {
			return nil, fmt.Errorf("%w: header %s: %v", errFormat, HeaderEnvelope, err)
		}
		delete(env, message.FieldMsg)
		if len(bytes.TrimSpace(d.Body)) > 0 {
			msg, err := message.Decode(d.Body)
			if err != nil {
				return nil, fmt.Errorf("%w: body: %v", errFormat, err)
			}
			env[message.FieldMsg] = msg
		}
	case nil:
		msg, err := message.Decode(d.Body)
		if err != nil {
			return nil, fmt.Errorf("%w: body: %v", errFormat, err)
		}
		ts := now
		if s, ok := d.Headers[HeaderSentAt].(string); ok {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				ts = t
			}
		}
		env = map[string]any{
			message.FieldTopic:     d.RoutingKey,
			message.FieldMsg:       msg,
			message.FieldTimestamp: ts.Unix(),
			message.FieldI:         counter(),
			message.FieldUsername:  fmUsername,
		}
		if id := d.MessageId; id != "" {
			if !yearPrefixed(id) {
				id = strconv.Itoa(now.UTC().Year()) + "-" + id
			}
			env[message.FieldMsgID] = id
		}
	default:
		return nil, fmt.Errorf("%w: header %s is a %T, not a string", errFormat, HeaderEnvelope, raw)
	}
	body, err := message.Canonical(env)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errFormat, err)
	}
	m.Body = body
	if id, ok := env[message.FieldMsgID].(string); ok {
		m.ID = id
	}
	return m, nil
}

// yearPrefixed: the id starts with four ASCII digits and '-'.
func yearPrefixed(id string) bool {
	if len(id) < 5 || id[4] != '-' {
		return false
	}
	for i := range 4 {
		if id[i] < '0' || id[i] > '9' {
			return false
		}
	}
	return true
}
