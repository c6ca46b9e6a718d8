package amqp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Defaults for the zero values of Options.
const (
	DefaultExchange          = "amq.topic"
	DefaultReconnectDelay    = 100 * time.Millisecond
	DefaultMaxReconnectDelay = 30 * time.Second
)

// ErrBadOptions wraps every validation error of Options.
var ErrBadOptions = errors.New("amqp: bad options")

// Options configure an AMQP transport. The root package fills them from
// fedmsg's configuration keys (named in brackets).
//
// Authentication: a URL's user and password are used with SASL PLAIN
// (amqp091-go's default of guest/guest applies when the URL has none).
// SASL EXTERNAL (the broker takes the identity from the client
// certificate, RabbitMQ's rabbitmq_auth_mechanism_ssl) is used instead for
// an amqps:// URL when TLS carries a client certificate (Certificates or
// GetClientCertificate) and the URL has no password: a password in the URL
// always means PLAIN. An explicit auth_mechanism in the URL's query wins
// over both rules.
type Options struct {
	// URLs (amqp_url) are amqp:// or amqps:// broker URLs. They are tried
	// in order at start; after a connection is lost the next one is tried
	// first (round robin), so a cluster's nodes share the failover.
	URLs []string
	// Exchange (amqp_exchange) is the topic exchange messages are
	// published to and queues are bound to. "" means amq.topic. A name
	// starting with "amq." is the broker's own and is only checked
	// (declared passively); any other is declared as a durable topic
	// exchange.
	Exchange string
	// Queue (amqp_queue) names a durable queue that outlives this process:
	// messages routed to it while nobody consumes wait there (Durable). All
	// subscriptions of a transport share it: they bind their patterns to
	// it and each message goes to every subscription it matches. "" gives
	// each subscription an exclusive, auto-delete, server-named queue that
	// dies with its subscription or connection.
	Queue string
	// Prefetch (amqp_prefetch) is the basic.qos prefetch count of each
	// consuming channel: how many unsettled deliveries the broker lets a
	// subscription hold. 0 means unlimited.
	Prefetch int
	// TLS is the client configuration for amqps:// URLs. nil means the
	// system roots; an empty ServerName is set from each URL's host.
	TLS *tls.Config
	// ReconnectDelay and MaxReconnectDelay bound the exponential backoff,
	// with jitter, between connection attempts once every URL has failed.
	// 0 means DefaultReconnectDelay and DefaultMaxReconnectDelay.
	ReconnectDelay, MaxReconnectDelay time.Duration
	// Logger receives connection events. nil discards them.
	Logger *slog.Logger
	// Format (amqp_format) is the message format on the wire: FormatFedmsg
	// ("" too: the envelope verbatim as the body) or FormatFedoraMessaging
	// (the envelope's msg as the body, fedora-messaging's properties and
	// headers, the rest of the envelope in the x-fedmsg-envelope header).
	Format string
}

// brokerURL is one parsed entry of Options.URLs.
type brokerURL struct {
	raw      string // with credentials: only ever given to amqp091-go
	redacted string // for errors and logs
	host     string
	tls      bool
	password bool // the URL carries a password
	authMech bool // the URL names its SASL mechanism itself
}

// Validate reports every option that cannot work, naming the option (and
// its configuration key). It never prints a password.
func (o Options) Validate() error {
	_, err := o.parse()
	return err
}

func (o Options) parse() ([]brokerURL, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrBadOptions}, args...)...))
	}
	if len(o.URLs) == 0 {
		bad("URLs (amqp_url): at least one amqp:// or amqps:// URL is needed")
	}
	var urls []brokerURL
	for i, raw := range o.URLs {
		u, err := parseURL(raw)
		if err != nil {
			bad("URLs (amqp_url) [%d]: %v", i, err)
			continue
		}
		urls = append(urls, u)
	}
	if err := checkName(o.Exchange); err != nil {
		bad("Exchange (amqp_exchange) %q: %v", o.Exchange, err)
	}
	if err := checkName(o.Queue); err != nil {
		bad("Queue (amqp_queue) %q: %v", o.Queue, err)
	} else if strings.HasPrefix(o.Queue, "amq.") {
		bad("Queue (amqp_queue) %q: names starting with \"amq.\" are reserved by the broker", o.Queue)
	}
	if o.Prefetch < 0 || o.Prefetch > 65535 {
		bad("Prefetch (amqp_prefetch) %d: must be 0 (unlimited) to 65535", o.Prefetch)
	}
	switch o.Format {
	case "", FormatFedmsg, FormatFedoraMessaging:
	default:
		bad("Format (amqp_format) %q: must be %q or %q", o.Format, FormatFedmsg, FormatFedoraMessaging)
	}
	if o.ReconnectDelay < 0 {
		bad("ReconnectDelay %v: must not be negative", o.ReconnectDelay)
	}
	if o.MaxReconnectDelay < 0 {
		bad("MaxReconnectDelay %v: must not be negative", o.MaxReconnectDelay)
	}
	if o.ReconnectDelay > 0 && o.MaxReconnectDelay > 0 && o.MaxReconnectDelay < o.ReconnectDelay {
		bad("MaxReconnectDelay %v is below ReconnectDelay %v", o.MaxReconnectDelay, o.ReconnectDelay)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return urls, nil
}

// parseURL checks one URL. Its errors never quote the URL: net/url's
// errors do, password included, so they are not wrapped.
func parseURL(raw string) (brokerURL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return brokerURL{}, errors.New("not a valid URL")
	}
	b := brokerURL{raw: raw, redacted: u.Redacted(), host: u.Hostname()}
	switch u.Scheme {
	case "amqp":
	case "amqps":
		b.tls = true
	default:
		return brokerURL{}, fmt.Errorf("%s: scheme %q is not amqp or amqps", b.redacted, u.Scheme)
	}
	if b.host == "" {
		return brokerURL{}, fmt.Errorf("%s: no host", b.redacted)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return brokerURL{}, fmt.Errorf("%s: port %q is not 1 to 65535", b.redacted, p)
		}
	}
	if _, set := u.User.Password(); set {
		b.password = true
	}
	b.authMech = u.Query().Has("auth_mechanism")
	// amqp091-go's parser has rules of its own (vhost, port, options);
	// its errors may quote the URL, so only its verdict is kept.
	if _, err := amqp091.ParseURI(raw); err != nil {
		return brokerURL{}, fmt.Errorf("%s: refused by the AMQP URI parser", b.redacted)
	}
	return b, nil
}

// checkName applies AMQP 0-9-1's rules for exchange and queue names
// (RabbitMQ's: up to 255 bytes of letters, digits, '-', '_', '.', ':').
func checkName(s string) error {
	if len(s) > 255 {
		return fmt.Errorf("longer than 255 bytes")
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:", r)) {
			return fmt.Errorf("character %q not allowed (letters, digits, '-', '_', '.', ':')", r)
		}
	}
	return nil
}

// external reports whether u is dialled with SASL EXTERNAL (see Options).
func external(u brokerURL, c *tls.Config) bool {
	return u.tls && !u.password && !u.authMech && c != nil &&
		(len(c.Certificates) > 0 || c.GetClientCertificate != nil)
}

// tlsFor returns the TLS configuration for u: a copy, since amqp091-go
// writes ServerName into the one it is given and dials may run while
// another URL's configuration is in use.
func tlsFor(u brokerURL, c *tls.Config) *tls.Config {
	if !u.tls {
		return nil
	}
	if c == nil {
		c = &tls.Config{MinVersion: tls.VersionTLS12}
	} else {
		c = c.Clone()
	}
	if c.ServerName == "" {
		c.ServerName = u.host
	}
	return c
}
