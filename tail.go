package fedmsg

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/signing"
	"github.com/gofedmsg/fedmsg/transport"
	"github.com/gofedmsg/fedmsg/transport/zmq"
)

// Received is one message read off the bus.
type Received struct {
	// Endpoint is the URL it came from.
	Endpoint string
	// Topic is frame 0, as sent.
	Topic string
	// Body is frame 1, byte for byte.
	Body []byte
	// Envelope is Body decoded (numbers keep their text).
	Envelope map[string]any
}

// SubscribeEndpoints lists what a subscriber connects to, as fedmsg's
// tail does: every URL of every endpoints key but relay_inbound, with a "*"
// host replaced by 127.0.0.1, in key order, each once.
func SubscribeEndpoints(cfg *config.Config) []string {
	keys := make([]string, 0, len(cfg.Endpoints))
	for k := range cfg.Endpoints {
		if k != "relay_inbound" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		for _, ep := range cfg.Endpoints[k] {
			ep = strings.Replace(ep, "://*:", "://127.0.0.1:", 1)
			if !slices.Contains(out, ep) {
				out = append(out, ep)
			}
		}
	}
	return out
}

// ResolveSRV looks up _fedmsg._tcp.<domain> for each srv_endpoints domain
// and returns domain -> tcp://target:port, as fedmsg does at config load.
// A domain that does not resolve is reported to warn and skipped.
func ResolveSRV(ctx context.Context, r *net.Resolver, domains []string, warn func(domain string, err error)) map[string][]string {
	if r == nil {
		r = net.DefaultResolver
	}
	out := map[string][]string{}
	for _, d := range domains {
		_, addrs, err := r.LookupSRV(ctx, "fedmsg", "tcp", d)
		if err != nil {
			if warn != nil {
				warn(d, err)
			}
			continue
		}
		for _, a := range addrs {
			out[d] = append(out[d], "tcp://"+net.JoinHostPort(a.Target, strconv.Itoa(int(a.Port))))
		}
	}
	return out
}

// Tail yields every well-formed message whose topic matches one of
// patterns (message.Pattern: a prefix or a glob; none: everything) until
// ctx ends or the loop stops. A message whose envelope topic differs from
// its frame-0 topic is dropped: the frame topic is not authenticated, the
// envelope's is. With validate_signatures, a message that fails validation
// is dropped with a warning naming the reason. An error is yielded only
// when the subscription cannot start.
func (c *Context) Tail(ctx context.Context, prefixes ...string) iter.Seq2[*Received, error] {
	return func(yield func(*Received, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var validator *signing.Validator
		if c.cfg.ValidateSignatures {
			v, err := c.Validator()
			if err != nil {
				yield(nil, fmt.Errorf("fedmsg: tail: validate_signatures: %w", err))
				return
			}
			validator = v
		}
		ch, stop, err := c.subscribe(ctx, prefixes)
		if err != nil {
			yield(nil, fmt.Errorf("fedmsg: tail: %w", err))
			return
		}
		defer stop()
		for d := range ch {
			env, err := message.DecodeObject(d.Message.Body)
			if err != nil {
				_ = d.Nack(ctx, transport.ErrPermanent)
				c.log.Warn("dropped undecodable message", "endpoint", d.Source, "topic", d.Message.Topic, "err", err)
				continue
			}
			if t, _ := env["topic"].(string); t != d.Message.Topic {
				_ = d.Nack(ctx, transport.ErrPermanent)
				c.log.Warn("dropped message whose envelope topic differs from its frame topic", "endpoint", d.Source, "frame_topic", d.Message.Topic, "envelope_topic", t)
				continue
			}
			if validator != nil {
				if err := validator.Validate(ctx, env); err != nil {
					_ = d.Nack(ctx, transport.ErrPermanent)
					c.log.Warn("dropped invalid message", "endpoint", d.Source, "topic", d.Message.Topic, "msg_id", env["msg_id"], "reason", err)
					continue
				}
			}
			more := yield(&Received{Endpoint: d.Source, Topic: d.Message.Topic, Body: d.Message.Body, Envelope: env}, nil)
			// Acked once the caller has had it, so on a queue a message
			// lost with this process goes back to the broker.
			_ = d.Ack(context.WithoutCancel(ctx))
			if !more {
				return
			}
		}
	}
}

// subscribe returns the deliveries Tail reads: from the broker when
// zmq_enabled is false, else from a ZeroMQ subscriber connected to every
// endpoint (and srv_endpoints). stop releases what subscribe opened.
func (c *Context) subscribe(ctx context.Context, patterns []string) (_ <-chan *transport.Delivery, stop func(), err error) {
	if c.broker != nil {
		ch, err := c.broker.Subscribe(ctx, patterns...)
		return ch, func() {}, err
	}
	o := ZMQOptions(c.cfg, c.log)
	o.Subscribe = subscribeAddrs(ctx, c.cfg, c.log)
	sub, err := zmq.New(o)
	if err != nil {
		return nil, nil, err
	}
	stop = func() { sub.Close(context.WithoutCancel(ctx)) }
	ch, err := sub.Subscribe(ctx, patterns...)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return ch, stop, nil
}

// subscribeAddrs is every endpoint a subscriber connects to: those of
// endpoints (SubscribeEndpoints), then those srv_endpoints resolve to.
func subscribeAddrs(ctx context.Context, cfg *config.Config, log *slog.Logger) []string {
	addrs := SubscribeEndpoints(cfg)
	if len(cfg.SRVEndpoints) > 0 {
		srv := ResolveSRV(ctx, nil, cfg.SRVEndpoints, func(d string, err error) {
			log.Warn("srv_endpoints: lookup failed, skipped", "domain", d, "err", err)
		})
		for _, d := range cfg.SRVEndpoints {
			addrs = append(addrs, srv[d]...)
		}
	}
	return addrs
}
