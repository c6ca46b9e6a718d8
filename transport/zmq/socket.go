package zmq

import (
	"errors"
	"fmt"
	"net"
	"strings"

	zmq4 "github.com/pebbe/zmq4"
)

// newContext makes a ZeroMQ context with the configured I/O threads.
func newContext(o Options) (*zmq4.Context, error) {
	zctx, err := zmq4.NewContext()
	if err != nil {
		return nil, fmt.Errorf("zmq: new context: %w", err)
	}
	if o.IOThreads > 0 {
		if err := zctx.SetIoThreads(o.IOThreads); err != nil {
			zctx.Term()
			return nil, fmt.Errorf("zmq: io_threads %d: %w", o.IOThreads, err)
		}
	}
	return zctx, nil
}

// newSocket creates a socket with every option fedmsg's config names.
func newSocket(zctx *zmq4.Context, typ zmq4.Type, o Options) (*zmq4.Socket, error) {
	s, err := zctx.NewSocket(typ)
	if err != nil {
		return nil, fmt.Errorf("zmq: new %v socket: %w", typ, err)
	}
	if err := applyOptions(s, typ, o); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func applyOptions(s *zmq4.Socket, typ zmq4.Type, o Options) error {
	type setting struct {
		name string
		set  func() error
	}
	settings := []setting{
		// HWM 0 is libzmq's "no limit": we pass it on, unlike fedmsg,
		// which left the default of 1000 in place for 0.
		{"high_water_mark (SNDHWM)", func() error { return s.SetSndhwm(o.HighWaterMark) }},
		{"high_water_mark (RCVHWM)", func() error { return s.SetRcvhwm(o.HighWaterMark) }},
		{"zmq_linger", func() error { return s.SetLinger(o.Linger) }},
	}
	if typ == zmq4.SUB {
		if o.ReconnectIvl > 0 {
			settings = append(settings, setting{"zmq_reconnect_ivl", func() error { return s.SetReconnectIvl(o.ReconnectIvl) }})
		}
		if o.ReconnectIvlMax > 0 {
			settings = append(settings, setting{"zmq_reconnect_ivl_max", func() error { return s.SetReconnectIvlMax(o.ReconnectIvlMax) }})
		}
	}
	if o.TCPKeepalive >= 0 {
		settings = append(settings, setting{"zmq_tcp_keepalive", func() error { return s.SetTcpKeepalive(o.TCPKeepalive) }})
	}
	if o.TCPKeepaliveCnt >= 0 {
		settings = append(settings, setting{"zmq_tcp_keepalive_cnt", func() error { return s.SetTcpKeepaliveCnt(o.TCPKeepaliveCnt) }})
	}
	if o.TCPKeepaliveIdle >= 0 {
		settings = append(settings, setting{"zmq_tcp_keepalive_idle", func() error { return s.SetTcpKeepaliveIdle(o.TCPKeepaliveIdle) }})
	}
	if o.TCPKeepaliveIntvl >= 0 {
		settings = append(settings, setting{"zmq_tcp_keepalive_intvl", func() error { return s.SetTcpKeepaliveIntvl(o.TCPKeepaliveIntvl) }})
	}
	for _, st := range settings {
		if err := st.set(); err != nil {
			return fmt.Errorf("zmq: set %s: %w", st.name, err)
		}
	}
	return nil
}

// PublisherBindAddr rewrites a tcp endpoint to bind every interface on its
// port, as fedmsg does for publishers: the host in endpoints is the name
// others connect to, not an address to bind. A loopback address is the
// exception and is bound as written: an endpoint nobody else can reach
// must not open a port on every interface. Other schemes are kept.
func PublisherBindAddr(endpoint string) string {
	if !strings.HasPrefix(endpoint, "tcp://") {
		return endpoint
	}
	i := strings.LastIndex(endpoint, ":")
	if i < len("tcp://") {
		return endpoint
	}
	host := strings.Trim(endpoint[len("tcp://"):i], "[]")
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return endpoint
	}
	return "tcp://*" + endpoint[i:]
}

// ErrNoEndpoint: none of the listed endpoints could be bound or connected.
var ErrNoEndpoint = errors.New("zmq: no available endpoint")

// bindFirst binds s to the first endpoint that works, like fedmsg's
// publisher, and names the key and every endpoint tried when none does.
func bindFirst(s *zmq4.Socket, key string, endpoints []string, rewrite func(string) string) (string, error) {
	if len(endpoints) == 0 {
		return "", fmt.Errorf("%w for %s: the list is empty", ErrNoEndpoint, key)
	}
	var tried []string
	for _, ep := range endpoints {
		addr := rewrite(ep)
		err := s.Bind(addr)
		if err == nil {
			return lastEndpoint(s, addr), nil
		}
		tried = append(tried, fmt.Sprintf("%s (%v)", addr, err))
	}
	return "", fmt.Errorf("%w for %s: tried %s", ErrNoEndpoint, key, strings.Join(tried, ", "))
}

// connectFirst connects s to the first endpoint that is accepted. ZeroMQ
// connects asynchronously, so "accepted" means the address is well formed.
func connectFirst(s *zmq4.Socket, key string, endpoints []string) (string, error) {
	if len(endpoints) == 0 {
		return "", fmt.Errorf("%w for %s: the list is empty", ErrNoEndpoint, key)
	}
	var tried []string
	for _, ep := range endpoints {
		err := s.Connect(ep)
		if err == nil {
			return ep, nil
		}
		tried = append(tried, fmt.Sprintf("%s (%v)", ep, err))
	}
	return "", fmt.Errorf("%w for %s: tried %s", ErrNoEndpoint, key, strings.Join(tried, ", "))
}

// RelayInboundAddrs expands a relay_inbound endpoint the way fedmsg-relay
// binds it: a tcp host name is resolved and every IPv4 address bound on the
// same port; an IP literal, "*" and other schemes are used as written.
func RelayInboundAddrs(endpoint string) ([]string, error) {
	if !strings.HasPrefix(endpoint, "tcp://") {
		return []string{endpoint}, nil
	}
	host, port, err := net.SplitHostPort(strings.TrimPrefix(endpoint, "tcp://"))
	if err != nil {
		return nil, fmt.Errorf("zmq: relay_inbound %q: %w", endpoint, err)
	}
	if host == "*" || net.ParseIP(host) != nil {
		return []string{endpoint}, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return nil, fmt.Errorf("zmq: relay_inbound %q: resolve %s: %w", endpoint, host, err)
	}
	var addrs []string
	for _, ip := range ips {
		if v4 := ip.To4(); v4 != nil {
			addrs = append(addrs, "tcp://"+net.JoinHostPort(v4.String(), port))
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("zmq: relay_inbound %q: %s has no IPv4 address", endpoint, host)
	}
	return addrs, nil
}

// lastEndpoint is the address a socket really bound (a "*" port resolved),
// or fallback when libzmq cannot say.
func lastEndpoint(s *zmq4.Socket, fallback string) string {
	if ep, err := s.GetLastEndpoint(); err == nil && ep != "" {
		return ep
	}
	return fallback
}

// NewContext makes a ZeroMQ context with the configured I/O threads, for
// packages (replay) whose sockets are not publishers or subscribers but
// must follow the same configuration.
func NewContext(o Options) (*zmq4.Context, error) { return newContext(o) }

// NewSocket creates a socket of any type with the options fedmsg's config
// names (high-water mark, linger, TCP keepalive), as this package's own
// sockets get them.
func NewSocket(zctx *zmq4.Context, typ zmq4.Type, o Options) (*zmq4.Socket, error) {
	return newSocket(zctx, typ, o)
}
