package fedmsg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/transport"
)

// Publish sends msg on the bus with fedmsg's envelope: the topic becomes
// "<topic_prefix>.<environment>.<modname>.<topic>" (unless modname already
// starts with the prefix), a falsy msg becomes {}, and the envelope carries
// msg_id, timestamp, i and username. msg may be any value encoding/json can
// marshal; values decoded by message.Decode keep their number text.
//
// With sign_messages the envelope is signed (x509 or gpg) before it is sent.
// Like fedmsg, the counter "i" is consumed before anything can fail.
func (c *Context) Publish(ctx context.Context, topic, modname string, msg any) error {
	i := c.counter.Next()
	if modname == "" {
		modname = c.modname
	}
	if modname == "" {
		return ErrNoModname
	}
	if c.pub == nil {
		return fmt.Errorf("%w: set \"active: true\" to publish through the relay at relay_inbound, or \"name\" to a key of \"endpoints\" to bind one", ErrNoPublisher)
	}
	full := message.Topic(c.cfg.TopicPrefix, c.cfg.Environment, modname, topic)
	msg, err := jsonTree(msg)
	if err != nil {
		return fmt.Errorf("fedmsg: publish %s: %w", full, err)
	}
	env := message.NewEnvelope(full, msg, i, c.username, time.Now())
	if c.signer != nil {
		if env, err = c.signer.Sign(env); err != nil {
			return fmt.Errorf("fedmsg: sign %s: %w", full, err)
		}
	}
	body, err := message.Canonical(env)
	if err != nil {
		return fmt.Errorf("fedmsg: publish %s: %w", full, err)
	}
	id, _ := env["msg_id"].(string)
	return c.pub.Publish(ctx, &transport.Message{Topic: full, Body: body, ID: id})
}

// jsonTree turns msg into values canonical JSON can encode: those it knows
// pass through; anything else (structs, typed maps) goes through
// encoding/json and back, keeping number text.
func jsonTree(msg any) (any, error) {
	if _, err := message.Canonical(msg); err == nil {
		return msg, nil
	} else if !errors.Is(err, message.ErrUnsupportedValue) {
		return nil, err
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("msg is not JSON-encodable: %w", err)
	}
	return message.Decode(data)
}
