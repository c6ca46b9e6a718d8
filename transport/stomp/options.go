package stomp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by New to zero fields.
const (
	DefaultReconnectDelay    = 100 * time.Millisecond // fedmsg's stomp_delay
	DefaultMaxReconnectDelay = 60 * time.Second       // fedmsg's cap
)

// ErrInvalidOptions wraps every error Options.Validate reports.
var ErrInvalidOptions = errors.New("stomp: invalid options")

// Options configure a STOMP transport. The root package fills it from
// fedmsg's configuration keys (named in parentheses).
type Options struct {
	// Addrs are the brokers, host:port each (stomp_uri split on ","). The
	// client starts with the first and moves round robin on failure.
	Addrs []string
	// Vhost is the CONNECT frame's host header; "" means "/", which is
	// what RabbitMQ needs (it refuses the dial address go-stomp would send).
	Vhost string
	// Login and Passcode (stomp_user, stomp_pass). When both are empty and
	// TLS carries no client certificate, guest/guest is sent, as fedmsg
	// does; with a client certificate nothing is sent, so the broker logs
	// the client in by the certificate (RabbitMQ's ssl_cert_login).
	Login, Passcode string
	// TLS: nil means plain TCP. When TLS.ServerName is empty each address's
	// host is used, so the broker's certificate is verified for the host
	// actually dialled.
	TLS *tls.Config
	// HeartBeat (stomp_heartbeat) is offered in both directions; 0 = none.
	// The client sends at least every HeartBeat, asks the broker for every
	// HeartBeat/2, and leaves a broker silent for 2*HeartBeat (or twice
	// the broker's own interval, when it cannot beat that often).
	HeartBeat time.Duration
	// Queue (stomp_queue): when set, Subscribe consumes only this
	// destination, with client-individual acks, and patterns filter
	// in-process. On RabbitMQ a "/queue/<name>" queue is made durable and
	// bound to amq.topic with "#" (see the package documentation).
	Queue string
	// DurableName (stomp_durable_name): on ActiveMQ, the connection's
	// client-id and the name of its durable topic subscriptions, so
	// persistent messages published while the subscriber is away wait on
	// the broker; deliveries are acked individually (Redelivery, Durable).
	// Closing never removes a durable subscription. Refused on other
	// brokers (RabbitMQ: use Queue). See the package documentation.
	DurableName string
	// ReconnectDelay (stomp_delay) is the first reconnect delay (0 = 100ms);
	// it grows by 1+2/len(Addrs) per failure, with jitter, up to
	// MaxReconnectDelay (0 = 60s), and resets once a broker says CONNECTED.
	ReconnectDelay    time.Duration
	MaxReconnectDelay time.Duration
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
}

// oneConsumer reports whether the connection consumes through one
// individually acked consumer that keeps messages while away (a queue,
// or an ActiveMQ durable subscription) rather than a plain topic
// subscription per local subscription.
func (o Options) oneConsumer() bool { return o.Queue != "" || o.DurableName != "" }

// Validate reports every option that cannot work, each error naming the
// option (and the fedmsg key it comes from) and wrapping ErrInvalidOptions.
func (o Options) Validate() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, a...)...))
	}
	if len(o.Addrs) == 0 {
		bad("Addrs (stomp_uri) is empty: give at least one host:port")
	}
	for i, a := range o.Addrs {
		if err := checkAddr(strings.TrimSpace(a)); err != nil {
			bad("Addrs[%d] (stomp_uri) %q: %v", i, a, err)
		}
	}
	for _, f := range []struct{ name, key, v string }{
		{"Vhost", "host header", o.Vhost},
		{"Login", "stomp_user", o.Login},
		{"Passcode", "stomp_pass", o.Passcode},
		{"Queue", "stomp_queue", o.Queue},
		{"DurableName", "stomp_durable_name", o.DurableName},
	} {
		if strings.ContainsAny(f.v, "\r\n\x00") {
			bad("%s (%s) contains a line break or NUL, which would break the frame", f.name, f.key)
		}
	}
	if o.Queue != "" && strings.TrimSpace(o.Queue) != o.Queue {
		bad("Queue (stomp_queue) %q has leading or trailing spaces", o.Queue)
	}
	if o.DurableName != "" && strings.TrimSpace(o.DurableName) != o.DurableName {
		bad("DurableName (stomp_durable_name) %q has leading or trailing spaces", o.DurableName)
	}
	if strings.ContainsRune(o.DurableName, '\\') {
		// CONNECT headers are not escaped, so a backslash would be read
		// differently in client-id and in the (escaped) SUBSCRIBE.
		bad("DurableName (stomp_durable_name) %q contains a backslash", o.DurableName)
	}
	if o.Queue != "" && o.DurableName != "" {
		bad("Queue (stomp_queue) and DurableName (stomp_durable_name) are both set: they are two ways to keep messages while away (a queue, or an ActiveMQ durable topic subscription); set one")
	}
	if o.HeartBeat < 0 {
		bad("HeartBeat (stomp_heartbeat) is negative: %v", o.HeartBeat)
	} else if o.HeartBeat > 0 && o.HeartBeat < time.Millisecond {
		bad("HeartBeat (stomp_heartbeat) %v is below STOMP's 1ms resolution", o.HeartBeat)
	}
	if o.ReconnectDelay < 0 {
		bad("ReconnectDelay (stomp_delay) is negative: %v", o.ReconnectDelay)
	}
	if o.MaxReconnectDelay < 0 {
		bad("MaxReconnectDelay is negative: %v", o.MaxReconnectDelay)
	}
	if o.ReconnectDelay > 0 && o.MaxReconnectDelay > 0 && o.MaxReconnectDelay < o.ReconnectDelay {
		bad("MaxReconnectDelay %v is below ReconnectDelay (stomp_delay) %v", o.MaxReconnectDelay, o.ReconnectDelay)
	}
	return errors.Join(errs...)
}

func checkAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("missing host")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}

// withDefaults returns o with zero fields filled in and addresses trimmed.
func (o Options) withDefaults() Options {
	addrs := make([]string, len(o.Addrs))
	for i, a := range o.Addrs {
		addrs[i] = strings.TrimSpace(a)
	}
	o.Addrs = addrs
	if o.Vhost == "" {
		o.Vhost = "/"
	}
	if o.ReconnectDelay == 0 {
		o.ReconnectDelay = DefaultReconnectDelay
	}
	if o.MaxReconnectDelay == 0 {
		o.MaxReconnectDelay = max(DefaultMaxReconnectDelay, o.ReconnectDelay)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// clientCert reports whether the TLS configuration presents a client
// certificate, which replaces the login headers.
func (o Options) clientCert() bool {
	return o.TLS != nil && (len(o.TLS.Certificates) > 0 || o.TLS.GetClientCertificate != nil)
}
