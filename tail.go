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
	"github.com/gofedmsg/fedmsg/replay"
	"github.com/gofedmsg/fedmsg/signing"
	"github.com/gofedmsg/fedmsg/transport"
	"github.com/gofedmsg/fedmsg/transport/zmq"
)

// Received is one message read off the bus.
type Received struct {
	// Name is the endpoints key (or srv_endpoints domain) of Endpoint, the
	// name fedmsg's tail yields with each message; "" from a broker.
	Name string
	// Endpoint is the URL it came from: for a replayed message, the
	// replay endpoint that sent it.
	Endpoint string
	// Replayed is set on a message fetched from a replay server to fill a
	// gap in its publisher's seq_id sequence (see Tail).
	Replayed bool
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
//
// With replay_endpoints (over ZeroMQ), Tail recovers gaps as
// replay.GapTracker describes: a message is tied to a replay name by the
// endpoint it came from, whose endpoints key (Received.Name) is looked up
// in replay_endpoints, as fedmsg's tail does. When a publisher's seq_id
// skips, the missing messages are fetched from its replay endpoint and
// yielded first, in order, with Replayed set; a seq_id already delivered
// is dropped; a seq_id starting again at 1 (or stepping far back) is a
// publisher restart, not a run of duplicates. Replayed messages are
// filtered by patterns and validated like the others. A failed query is
// logged and the current message delivered anyway.
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
		ch, names, stop, err := c.subscribe(ctx, prefixes)
		if err != nil {
			yield(nil, fmt.Errorf("fedmsg: tail: %w", err))
			return
		}
		defer stop()
		var gaps *replay.GapTracker
		var patterns []message.Pattern
		if c.broker == nil && len(c.cfg.ReplayEndpoints) > 0 {
			for _, p := range prefixes {
				cp, err := message.CompilePattern(p)
				if err != nil {
					yield(nil, fmt.Errorf("fedmsg: tail: %w", err))
					return
				}
				patterns = append(patterns, cp)
			}
			gaps = c.gapTracker()
		}
		// check is what every message goes through before it is yielded.
		check := func(source, topic string, env map[string]any) bool {
			if t, _ := env["topic"].(string); t != topic {
				c.log.Warn("dropped message whose envelope topic differs from its frame topic", "endpoint", source, "frame_topic", topic, "envelope_topic", t)
				return false
			}
			if validator != nil {
				if err := validator.Validate(ctx, env); err != nil {
					c.log.Warn("dropped invalid message", "endpoint", source, "topic", topic, "msg_id", env["msg_id"], "reason", err)
					return false
				}
			}
			return true
		}
		for d := range ch {
			env, err := message.DecodeObject(d.Message.Body)
			if err != nil {
				_ = d.Nack(ctx, transport.ErrPermanent)
				c.log.Warn("dropped undecodable message", "endpoint", d.Source, "topic", d.Message.Topic, "err", err)
				continue
			}
			if !check(d.Source, d.Message.Topic, env) {
				_ = d.Nack(ctx, transport.ErrPermanent)
				continue
			}
			name := names[d.Source]
			current := &Received{Name: name, Endpoint: d.Source, Topic: d.Message.Topic, Body: d.Message.Body, Envelope: env}
			out := []*Received{current}
			if gaps != nil {
				out = out[:0]
				for _, e := range gaps.Next(ctx, name, replay.Envelope{Body: d.Message.Body, Fields: env}) {
					if !e.Replayed {
						out = append(out, current)
						continue
					}
					topic, _ := e.Fields["topic"].(string)
					source := c.cfg.ReplayEndpoints[name]
					if !message.MatchAny(patterns, topic) || !check(source, topic, e.Fields) {
						continue
					}
					out = append(out, &Received{Name: name, Endpoint: source, Replayed: true, Topic: topic, Body: e.Body, Envelope: e.Fields})
				}
			}
			more := true
			for _, r := range out {
				if more = yield(r, nil); !more {
					break
				}
			}
			// Acked once the caller has had it, so on a queue a message
			// lost with this process goes back to the broker.
			_ = d.Ack(context.WithoutCancel(ctx))
			if !more {
				return
			}
		}
	}
}

// gapTracker is the replay client a subscriber uses (see newGapTracker).
func (c *Context) gapTracker() *replay.GapTracker { return newGapTracker(c.cfg, c.log) }

// subscribe returns the deliveries Tail reads: from the broker when
// zmq_enabled is false, else from a ZeroMQ subscriber connected to every
// endpoint (and srv_endpoints), with the name of each endpoint URL (see
// EndpointNames). stop releases what subscribe opened.
func (c *Context) subscribe(ctx context.Context, patterns []string) (_ <-chan *transport.Delivery, names map[string]string, stop func(), err error) {
	if c.broker != nil {
		ch, err := c.broker.Subscribe(ctx, patterns...)
		return ch, nil, func() {}, err
	}
	o := ZMQOptions(c.cfg, c.log)
	o.Subscribe, names = subscribeAddrs(ctx, c.cfg, c.log)
	sub, err := zmq.New(o)
	if err != nil {
		return nil, nil, nil, err
	}
	stop = func() { sub.Close(context.WithoutCancel(ctx)) }
	ch, err := sub.Subscribe(ctx, patterns...)
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	return ch, names, stop, nil
}

// EndpointNames maps each URL of SubscribeEndpoints to the endpoints key
// it is listed under: the name fedmsg's tail yields with a message and
// looks up in replay_endpoints. A URL listed under several keys gets the
// first in sorted order (we connect to it once; fedmsg would connect
// twice and see each message under both names).
func EndpointNames(cfg *config.Config) map[string]string {
	names := map[string]string{}
	keys := make([]string, 0, len(cfg.Endpoints))
	for k := range cfg.Endpoints {
		if k != "relay_inbound" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, ep := range cfg.Endpoints[k] {
			ep = strings.Replace(ep, "://*:", "://127.0.0.1:", 1)
			if _, ok := names[ep]; !ok {
				names[ep] = k
			}
		}
	}
	return names
}

// subscribeAddrs is every endpoint a subscriber connects to: those of
// endpoints (SubscribeEndpoints), then those srv_endpoints resolve to,
// with their names: the endpoints key, or the srv_endpoints domain (the
// key fedmsg gives them).
func subscribeAddrs(ctx context.Context, cfg *config.Config, log *slog.Logger) ([]string, map[string]string) {
	addrs := SubscribeEndpoints(cfg)
	names := EndpointNames(cfg)
	if len(cfg.SRVEndpoints) > 0 {
		srv := ResolveSRV(ctx, nil, cfg.SRVEndpoints, func(d string, err error) {
			log.Warn("srv_endpoints: lookup failed, skipped", "domain", d, "err", err)
		})
		for _, d := range cfg.SRVEndpoints {
			for _, ep := range srv[d] {
				addrs = append(addrs, ep)
				if _, ok := names[ep]; !ok {
					names[ep] = d
				}
			}
		}
	}
	return addrs, names
}
