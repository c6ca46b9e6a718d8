package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"regexp"
	"slices"
	"strings"
)

// Validate checks the values of c. All problems are reported together, one
// per line, each naming its key; the error wraps ErrInvalid.
func (c *Config) Validate() error {
	v := &validator{}

	v.intMin("io_threads", c.IOThreads, 1)
	v.intMin("high_water_mark", c.HighWaterMark, 0)
	v.intMin("fedmsg.consumers.gateway.high_water_mark", c.GatewayHighWaterMark, 0)
	v.floatMin("post_init_sleep", c.PostInitSleep)
	v.floatMin("timeout", c.Timeout)
	v.intMin("zmq_linger", c.ZMQLinger, 0)
	// -1 is libzmq's "leave the operating system's default".
	if c.ZMQTCPKeepalive < -1 || c.ZMQTCPKeepalive > 1 {
		v.addf("zmq_tcp_keepalive", "must be -1, 0 or 1, got %d", c.ZMQTCPKeepalive)
	}
	v.intMin("zmq_tcp_keepalive_cnt", c.ZMQTCPKeepaliveCnt, -1)
	v.intMin("zmq_tcp_keepalive_idle", c.ZMQTCPKeepaliveIdle, -1)
	v.intMin("zmq_tcp_keepalive_intvl", c.ZMQTCPKeepaliveIntvl, -1)
	v.intMin("zmq_reconnect_ivl", c.ZMQReconnectIvl, 0)
	v.intMin("zmq_reconnect_ivl_max", c.ZMQReconnectIvlMax, 0)
	v.intMin("zmq_max_msg_size", c.ZMQMaxMsgSize, 1)

	for _, name := range sortedKeys(c.Endpoints) {
		for i, u := range c.Endpoints[name] {
			v.zmqURL(fmt.Sprintf("endpoints.%s[%d]", name, i), u)
		}
	}
	for i, u := range c.RelayInbound {
		v.zmqURL(fmt.Sprintf("relay_inbound[%d]", i), u)
	}
	for _, name := range sortedKeys(c.ReplayEndpoints) {
		v.zmqURL("replay_endpoints."+name, c.ReplayEndpoints[name])
	}
	for i, u := range c.ZMQPublishEndpoints {
		v.zmqURL(fmt.Sprintf("zmq_publish_endpoints[%d]", i), u)
	}
	for i, u := range c.ZMQSubscribeEndpoints {
		v.zmqURL(fmt.Sprintf("zmq_subscribe_endpoints[%d]", i), u)
	}
	for i, d := range c.SRVEndpoints {
		if strings.TrimSpace(d) == "" {
			v.addf(fmt.Sprintf("srv_endpoints[%d]", i), "must not be empty")
		}
	}
	v.port("fedmsg.consumers.gateway.port", c.GatewayPort)

	v.oneOf("crypto_backend", c.CryptoBackend, "x509", "gpg")
	for i, b := range c.CryptoValidateBackends {
		v.oneOf(fmt.Sprintf("crypto_validate_backends[%d]", i), b, "x509", "gpg")
	}
	v.intMin("crl_cache_expiry", c.CRLCacheExpiry, 0)
	v.intMin("ca_cert_cache_expiry", c.CACertCacheExpiry, 0)

	if c.StompURI != "" {
		for i, addr := range strings.Split(c.StompURI, ",") {
			if _, _, err := net.SplitHostPort(strings.TrimSpace(addr)); err != nil {
				v.addf("stomp_uri", "address %d %q is not host:port", i+1, strings.TrimSpace(addr))
			}
		}
	}
	v.port("stomp_port", c.StompPort)
	v.intMin("stomp_heartbeat", c.StompHeartbeat, 0)
	v.floatMin("stomp_delay", c.StompDelay)
	v.oneOf("stomp_ack_mode", c.StompAckMode, "auto", "client", "client-individual")
	v.pair("stomp_ssl_crt", c.StompSSLCrt, "stomp_ssl_key", c.StompSSLKey)

	for i, u := range c.AMQPURL {
		key := fmt.Sprintf("amqp_url[%d]", i)
		if !strings.HasPrefix(u, "amqp://") && !strings.HasPrefix(u, "amqps://") {
			v.addf(key, "must be an amqp:// or amqps:// URL, got %s", quoteShort(redactURL(u)))
		}
	}
	v.intMin("amqp_prefetch", c.AMQPPrefetch, 0)
	v.oneOf("amqp_format", c.AMQPFormat, "fedmsg", "fedora-messaging")
	v.pair("amqp_ssl_crt", c.AMQPSSLCrt, "amqp_ssl_key", c.AMQPSSLKey)

	v.oneOf("irc_method", c.IRCMethod, "notice", "msg")
	v.intMin("collectd_interval", c.CollectdInterval, 1)
	v.intMin("moksha.workers_per_consumer", c.MokshaWorkersPerConsumer, 1)
	v.intMin("moksha.threadpool_size", c.MokshaThreadpoolSize, 0)
	if c.ZMQSubscribeMethod != "" {
		v.oneOf("zmq_subscribe_method", c.ZMQSubscribeMethod, "connect", "bind")
	}
	if c.TopicPrefixRe != "" {
		if _, err := regexp.Compile(c.TopicPrefixRe); err != nil {
			v.addf("topic_prefix_re", "invalid regular expression: %v", err)
		}
	}

	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			v.addf("metrics_addr", "must be host:port, got %s", quoteShort(c.MetricsAddr))
		}
	}
	v.oneOf("log_format", c.LogFormat, "text", "json")
	v.oneOf("log_level", c.LogLevel, "debug", "info", "warn", "error")
	v.intMin("spool_max_bytes", c.SpoolMaxBytes, 1024)
	v.oneOf("spool_full", c.SpoolFull, "block", "drop-oldest")

	if len(v.errs) == 0 {
		return nil
	}
	return errors.Join(v.errs...)
}

type validator struct {
	errs []error
}

func (v *validator) addf(key, format string, args ...any) {
	v.errs = append(v.errs, invalidf("config: key %q: %s", key, fmt.Sprintf(format, args...)))
}

func (v *validator) intMin(key string, n, lo int) {
	if n < lo {
		v.addf(key, "must be >= %d, got %d", lo, n)
	}
}

func (v *validator) floatMin(key string, f float64) {
	if !(f >= 0) || math.IsInf(f, 0) {
		v.addf(key, "must be a finite number >= 0, got %v", f)
	}
}

func (v *validator) port(key string, n int) {
	if n < 1 || n > 65535 {
		v.addf(key, "must be a port number (1-65535), got %d", n)
	}
}

func (v *validator) oneOf(key, s string, allowed ...string) {
	if !slices.Contains(allowed, s) {
		v.addf(key, "must be one of %s, got %s", strings.Join(allowed, ", "), quoteShort(s))
	}
}

// pair requires two keys to be set together (a client certificate and its
// key).
func (v *validator) pair(keyA, a, keyB, b string) {
	if a != "" && b == "" {
		v.addf(keyB, "must be set when %s is set", keyA)
	}
	if b != "" && a == "" {
		v.addf(keyA, "must be set when %s is set", keyB)
	}
}

// zmqSchemes are the ZeroMQ transports an endpoint URL may use.
var zmqSchemes = []string{"tcp", "ipc", "inproc", "epgm", "pgm"}

func (v *validator) zmqURL(key, u string) {
	if u == "" {
		v.addf(key, "endpoint URL must not be empty")
		return
	}
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok || rest == "" || !slices.Contains(zmqSchemes, scheme) {
		v.addf(key, "endpoint URL must be scheme://address with scheme one of %s, got %s",
			strings.Join(zmqSchemes, ", "), quoteShort(redactURL(u)))
	}
}
