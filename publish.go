package fedmsg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/replay"
	"github.com/gofedmsg/fedmsg/transport"
)

// Publish sends msg on the bus with fedmsg's envelope: the topic becomes
// "<topic_prefix>.<environment>.<modname>.<topic>" (unless modname already
// starts with the prefix), a falsy msg becomes {}, and the envelope carries
// msg_id, timestamp, i and username. msg may be any value encoding/json can
// marshal; values decoded by message.Decode keep their number text.
//
// With sign_messages the envelope is signed (x509 or gpg) before it is sent.
// With persistent_store it first gets the next seq_id of this publisher and
// is kept for replay (see package replay); the signature covers seq_id.
// Like fedmsg, the counter "i" is consumed before anything can fail.
//
// Through a broker (zmq_enabled false) with spool_dir set, Publish
// returns once the message is on disk in the spool; it reaches the broker
// in order as soon as the broker confirms, even after a restart of the
// process (see spool_publish.go).
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
	if c.store != nil {
		return c.publishStored(ctx, full, env)
	}
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

// publishStored numbers env from the store before signing it, so the
// signature covers seq_id and the envelope validates everywhere (fedmsg
// adds seq_id after signing, which breaks every stored signature: spec §7,
// vector t10-seq-id-added). The store keeps the bytes that are sent.
func (c *Context) publishStored(ctx context.Context, full string, env map[string]any) error {
	var seal replay.Seal
	if c.signer != nil {
		seal = c.signer.Sign
	}
	c.seqMu.Lock()
	defer c.seqMu.Unlock()
	env, body, err := c.store.Add(env, seal)
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
