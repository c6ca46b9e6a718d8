package fedmsg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/transport"
	"github.com/gofedmsg/fedmsg/transport/amqp"
	"github.com/gofedmsg/fedmsg/transport/stomp"
	"github.com/gofedmsg/fedmsg/transport/zmq"
)

// Transport kinds, as the bridge's configuration names them.
const (
	KindZMQ   = "zmq"
	KindSTOMP = "stomp"
	KindAMQP  = "amqp"
)

// ErrUnknownKind: a transport kind other than zmq, stomp or amqp.
var ErrUnknownKind = errors.New("fedmsg: unknown transport kind (want zmq, stomp or amqp)")

// OpenTransport builds a transport of kind from cfg, for the bridge and
// other programs that move messages between transports. A zmq transport
// subscribes to every endpoint (and srv_endpoints) like fedmsg tail, and
// publishes through the relay at relay_inbound like fedmsg logger, or,
// when "name" is set, binds endpoints[name] itself; with replay_endpoints
// its subscriptions recover gaps (a *GapRecovering around the ZeroMQ
// transport). stomp and amqp use the stomp_* and amqp_* keys and connect
// in the background.
func OpenTransport(ctx context.Context, kind string, cfg *config.Config, log *slog.Logger) (transport.Transport, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch kind {
	case KindZMQ:
		o := ZMQOptions(cfg, log)
		var names map[string]string
		o.Subscribe, names = subscribeAddrs(ctx, cfg, log)
		if cfg.Name != "" {
			o.Bind, o.BindKey = cfg.Endpoints[cfg.Name], fmt.Sprintf("endpoints[%q]", cfg.Name)
			if len(o.Bind) == 0 {
				return nil, fmt.Errorf("fedmsg: zmq transport: name %q has no entry in endpoints", cfg.Name)
			}
		} else {
			o.Connect = cfg.RelayInbound
		}
		t, err := zmq.New(o)
		if err != nil {
			return nil, fmt.Errorf("fedmsg: zmq transport: %w", err)
		}
		if len(cfg.ReplayEndpoints) > 0 {
			return &GapRecovering{Transport: t, gaps: newGapTracker(cfg, log), names: names, urls: cfg.ReplayEndpoints}, nil
		}
		return t, nil
	case KindSTOMP:
		o, err := StompOptions(cfg, log)
		if err != nil {
			return nil, err
		}
		t, err := stomp.New(o)
		if err != nil {
			return nil, fmt.Errorf("fedmsg: stomp transport: %w", err)
		}
		return t, nil
	case KindAMQP:
		o, err := AMQPOptions(cfg, log)
		if err != nil {
			return nil, err
		}
		t, err := amqp.New(o)
		if err != nil {
			return nil, fmt.Errorf("fedmsg: amqp transport: %w", err)
		}
		return t, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownKind, kind)
}
