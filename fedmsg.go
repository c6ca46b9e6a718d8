// Package fedmsg is the library API of gofedmsg: build a context from the
// fedmsg configuration, Publish messages with fedmsg's envelope, and Tail
// the bus. Messages are byte-compatible with Python fedmsg.
//
// Where a message goes: message/ builds and canonicalises the envelope,
// transport/zmq/ puts it on the wire, the relay (transport/zmq.Relay)
// fans it out, and Tail reads it back.
package fedmsg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/replay"
	"github.com/gofedmsg/fedmsg/signing"
	"github.com/gofedmsg/fedmsg/transport"
	"github.com/gofedmsg/fedmsg/transport/zmq"
)

// Sentinel errors of the library.
var (
	// ErrNoPublisher: this context was not configured to publish.
	ErrNoPublisher = errors.New("fedmsg: no publisher")
	// ErrNoModname: Publish needs a modname (Go cannot guess it from the
	// call stack as Python fedmsg does).
	ErrNoModname = errors.New("fedmsg: modname is required")
)

// Option adjusts a Context.
type Option func(*Context)

// WithLogger sets the logger for warnings (dropped messages, no relay).
func WithLogger(l *slog.Logger) Option { return func(c *Context) { c.log = l } }

// WithModname sets the modname used when Publish is given none, and the
// endpoint name "<modname>.<short hostname>" fedmsg would guess.
func WithModname(m string) Option { return func(c *Context) { c.modname = m } }

// WithHostname overrides the short host name used in endpoint names.
func WithHostname(h string) Option { return func(c *Context) { c.hostname = h } }

// Context publishes and tails the bus for one configuration. It is safe for
// concurrent use; its message counter "i" is shared by all publishers of
// the context.
type Context struct {
	cfg      *config.Config
	log      *slog.Logger
	modname  string
	hostname string
	username string
	counter  message.Counter

	pub     transport.Transport // nil when this context does not publish
	pubName string              // endpoint name, for errors and certnames
	// broker is the STOMP or AMQP transport when zmq_enabled is false:
	// Publish and Tail share it.
	broker transport.Transport
	signer signing.Signer // nil unless sign_messages

	// With persistent_store, every published envelope gets its seq_id from
	// store and is kept there; replay answers queries from it. seqMu keeps
	// numbering, storing and sending in one order, so subscribers never see
	// seq_ids out of order from one publisher.
	seqMu  sync.Mutex
	store  *replay.Store
	replay *replay.Server

	validatorOnce sync.Once
	validator     *signing.Validator
	validatorErr  error

	mu     sync.Mutex
	closed bool
}

// New builds a context. It opens the publishing socket at once when the
// configuration names one (active mode, or a "name" found in endpoints), so
// a busy port is reported here rather than at the first Publish.
func New(cfg *config.Config, opts ...Option) (*Context, error) {
	if cfg == nil {
		cfg = config.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Context{cfg: cfg, username: message.Username()}
	for _, o := range opts {
		o(c)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.hostname == "" {
		c.hostname = ShortHostname()
	}
	WarnKeyFiles(cfg, c.log)
	if cfg.ZMQEnabled {
		if err := c.openPublisher(); err != nil {
			return nil, err
		}
	} else if err := c.openBroker(); err != nil {
		return nil, err
	}
	if c.pub != nil && cfg.SignMessages {
		signer, err := NewSigner(cfg, signing.CertIndex(cfg.CertPrefix, c.pubName, c.hostname), c.hostname)
		if err != nil {
			c.pub.Close(context.Background())
			return nil, fmt.Errorf("fedmsg: sign_messages: %w", err)
		}
		c.signer = signer
	}
	if err := c.openReplay(cfg); err != nil {
		if c.pub != nil {
			c.pub.Close(context.Background())
		}
		return nil, err
	}
	return c, nil
}

// Config returns the configuration the context was built from.
func (c *Context) Config() *config.Config { return c.cfg }

// ShortHostname is the host name up to its first dot, as fedmsg uses it in
// endpoint names and certnames indexes.
func ShortHostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "localhost"
	}
	h, _, _ = strings.Cut(h, ".")
	return h
}

// publisherEndpoints decides how this context publishes, as fedmsg does:
// active mode connects to relay_inbound; otherwise the endpoint name is
// "name" (or "<modname>.<host>") and its endpoints are bound.
func (c *Context) publisherEndpoints() (name string, bind, connect []string) {
	cfg := c.cfg
	if cfg.Mute {
		return "", nil, nil
	}
	if cfg.Active {
		return "relay_inbound", nil, cfg.RelayInbound
	}
	candidates := []string{cfg.Name}
	if cfg.Name != "" {
		candidates = append(candidates, cfg.Name+"."+c.hostname)
	}
	if c.modname != "" {
		candidates = append(candidates, c.modname+"."+c.hostname)
	}
	for _, n := range candidates {
		if n == "" {
			continue
		}
		if eps, ok := cfg.Endpoints[n]; ok && len(eps) > 0 {
			return n, eps, nil
		}
	}
	return "", nil, nil
}

func (c *Context) openPublisher() error {
	name, bind, connect := c.publisherEndpoints()
	if len(bind) == 0 && len(connect) == 0 {
		return nil
	}
	o := ZMQOptions(c.cfg, c.log)
	o.Bind, o.Connect = bind, connect
	o.BindKey = fmt.Sprintf("endpoints[%q]", name)
	t, err := zmq.New(o)
	if err != nil {
		return fmt.Errorf("fedmsg: publisher %q: %w", name, err)
	}
	c.pub, c.pubName = t, name
	c.log.Debug("publisher ready", "name", name, "endpoint", t.PublisherAddr())
	return nil
}

// openBroker builds the STOMP or AMQP transport of a context whose
// zmq_enabled is false. Every such context may publish (unless mute): a
// broker needs no relay and no bound endpoint. The name that picks the
// certificate follows fedmsg's rules for the equivalent ZeroMQ publisher.
func (c *Context) openBroker() error {
	t, name, err := BrokerTransport(c.cfg, c.log)
	if err != nil {
		return err
	}
	c.broker = t
	if c.cfg.Mute {
		return nil
	}
	c.pub = t
	switch {
	case c.cfg.Active:
		c.pubName = "relay_inbound"
	case c.cfg.Name != "":
		c.pubName = c.cfg.Name
	case c.modname != "":
		c.pubName = c.modname + "." + c.hostname
	}
	if c.cfg.SpoolDir != "" {
		sp, err := newSpooledPublisher(t, c.cfg, c.pubName, c.log)
		if err != nil {
			t.Close(context.Background())
			return err
		}
		c.pub = sp
	}
	c.log.Debug("publishing through a broker", "broker", name, "spool_dir", c.cfg.SpoolDir)
	return nil
}

// ZMQOptions translates fedmsg's socket keys into ZeroMQ transport options.
func ZMQOptions(cfg *config.Config, log *slog.Logger) zmq.Options {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	return zmq.Options{
		HighWaterMark:     cfg.HighWaterMark,
		IOThreads:         cfg.IOThreads,
		Linger:            ms(cfg.ZMQLinger),
		ReconnectIvl:      ms(cfg.ZMQReconnectIvl),
		ReconnectIvlMax:   ms(cfg.ZMQReconnectIvlMax),
		TCPKeepalive:      cfg.ZMQTCPKeepalive,
		TCPKeepaliveCnt:   cfg.ZMQTCPKeepaliveCnt,
		TCPKeepaliveIdle:  cfg.ZMQTCPKeepaliveIdle,
		TCPKeepaliveIntvl: cfg.ZMQTCPKeepaliveIntvl,
		MaxMsgSize:        cfg.ZMQMaxMsgSize,
		SubscriberReady:   time.Duration(cfg.PostInitSleep * float64(time.Second)),
		Logger:            log,
	}
}

// Close flushes what was published (within zmq_linger) and releases the
// sockets, giving up when ctx ends.
func (c *Context) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	err := c.closeReplay(ctx)
	if sp, ok := c.pub.(*spooledPublisher); ok {
		// Sends what it can within ctx, then closes the broker too.
		return errors.Join(err, sp.Close(ctx))
	}
	if c.broker != nil {
		return errors.Join(err, c.broker.Close(ctx))
	}
	if c.pub != nil {
		return errors.Join(err, c.pub.Close(ctx))
	}
	return err
}
