package fedmsg

import (
	"context"
	"log/slog"
	"time"

	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/replay"
	"github.com/gofedmsg/fedmsg/transport"
)

// GapRecovering is a ZeroMQ transport whose subscriptions recover what
// ZeroMQ dropped, as Tail does: when a publisher's seq_id skips, the
// missing messages are fetched from its replay endpoint
// (replay_endpoints[name], name being the endpoints key of the URL the
// message came from) and delivered first, in order; a seq_id already
// delivered is not delivered again. See replay.GapTracker.
//
// OpenTransport returns one for KindZMQ when replay_endpoints is set, so
// the hub's consumers and a bridge's ZeroMQ routes get the messages a
// slow joiner, a high-water mark or a reconnect cost them.
type GapRecovering struct {
	transport.Transport
	gaps  *replay.GapTracker
	names map[string]string // endpoint URL -> endpoints key
	urls  map[string]string // replay_endpoints
}

// Unwrap is the ZeroMQ transport underneath.
func (g *GapRecovering) Unwrap() transport.Transport { return g.Transport }

// Gaps is the tracker, for its counts (replayed, lost, duplicates,
// publisher restarts, failed queries).
func (g *GapRecovering) Gaps() *replay.GapTracker { return g.gaps }

// Subscribe is the inner transport's subscription with gaps filled.
// Replayed messages are matched against patterns like the others; they
// carry no settlement (ZeroMQ has none) and their Source is the replay
// endpoint. A message that cannot be decoded is passed on as it came:
// what it is, and whether to drop it, is the subscriber's decision.
func (g *GapRecovering) Subscribe(ctx context.Context, patterns ...string) (<-chan *transport.Delivery, error) {
	compiled := make([]message.Pattern, 0, len(patterns))
	for _, p := range patterns {
		cp, err := message.CompilePattern(p)
		if err != nil {
			return nil, err
		}
		compiled = append(compiled, cp)
	}
	in, err := g.Transport.Subscribe(ctx, patterns...)
	if err != nil {
		return nil, err
	}
	out := make(chan *transport.Delivery, cap(in))
	go func() {
		defer close(out)
		send := func(d *transport.Delivery) bool {
			select {
			case out <- d:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for d := range in {
			name, tracked := g.names[d.Source]
			if tracked {
				_, tracked = g.urls[name]
			}
			env, err := message.DecodeObject(d.Message.Body)
			if !tracked || err != nil {
				if !send(d) {
					return
				}
				continue
			}
			for _, e := range g.gaps.Next(ctx, name, replay.Envelope{Body: d.Message.Body, Fields: env}) {
				if !e.Replayed {
					if !send(d) {
						return
					}
					continue
				}
				topic, _ := e.Fields[message.FieldTopic].(string)
				if len(compiled) > 0 && !message.MatchAny(compiled, topic) {
					continue
				}
				id, _ := e.Fields["msg_id"].(string)
				r := transport.NewDelivery(&transport.Message{Topic: topic, Body: e.Body, ID: id}, g.urls[name], nil)
				if !send(r) {
					return
				}
			}
		}
	}()
	return out, nil
}

// newGapTracker is the replay client of a subscriber: replay_endpoints,
// the configuration's socket options, the timeout per query.
func newGapTracker(cfg *config.Config, log *slog.Logger) *replay.GapTracker {
	so := replay.ClientOptions{Socket: ZMQOptions(cfg, log)}
	return replay.NewGapTracker(replay.GapOptions{
		Endpoints: cfg.ReplayEndpoints,
		Fetch: func(ctx context.Context, endpoint string, q replay.Request) ([]replay.Envelope, error) {
			return replay.QueryEnvelopes(ctx, endpoint, q, so)
		},
		Timeout: time.Duration(cfg.Timeout * float64(time.Second)),
		Logger:  log,
	})
}
