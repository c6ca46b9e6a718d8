// Package config holds gofedmsg's typed configuration: every key that Python
// fedmsg (and the moksha hub under it) reads, under fedmsg's own key names,
// with fedmsg's defaults, validation, and layered loading through koanf.
//
// Layers, later wins:
//
//  1. the built-in defaults (Default);
//  2. each directory of Sources.Dirs in order (DefaultDirs when nil), its
//     *.yaml, *.yml, *.toml and *.json files sorted by name;
//  3. the environment variable FEDMSG_CONFIG (a file, or a directory read
//     like the above);
//  4. each of Sources.Files (--config FILE);
//  5. FEDMSG_<KEY> environment variables;
//  6. command-line flags that were changed.
//
// Layers merge key by key and recursively, like fedmsg merges its config
// files: a later file that adds one entry to endpoints keeps the entries of
// earlier files and of the defaults. An explicit null replaces a value with
// the key's zero value (for a map: clears it).
//
// fedmsg key names contain dots (fedmsg.consumers.gateway.port,
// moksha.monitoring.socket) and so do map keys such as endpoint names
// (bodhi.app01). Such keys are flat, top-level keys here: a file may write
// them flat ("fedmsg.consumers.gateway.port: 9940") or nested
// (fedmsg: {consumers: {gateway: {port: 9940}}}, which is what TOML's dotted
// keys produce); both mean the same key.
package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
)

// ErrInvalid is wrapped by every error about configuration content: an
// unparsable file, an unknown key, a value of the wrong type, a failed
// validation.
var ErrInvalid = errors.New("config: invalid")

// Config is the complete configuration. Each field's koanf tag is the fedmsg
// key name, exactly. The comment of each field gives its default and where
// that default comes from ("legacy" = fedmsg.config.load_config's defaults,
// "shipped" = the fedmsg.d files fedmsg installs, "new" = fedmsg's
// FedmsgConfig, "NEW" = a key of gofedmsg that fedmsg does not have).
type Config struct {
	// ---- core ----

	// TopicPrefix is the first part of every topic. Default
	// "org.fedoraproject" (legacy and shipped).
	TopicPrefix string `koanf:"topic_prefix"`
	// Environment is the second part of every topic (dev, stg, prod, or
	// anything: fedmsg stopped checking it in 0.18.3). Default "dev".
	Environment string `koanf:"environment"`
	// IOThreads is the number of ZeroMQ I/O threads. Default 1.
	IOThreads int `koanf:"io_threads"`
	// PostInitSleep is how many seconds a publisher waits after creating its
	// sockets (ZeroMQ slow joiner). Default 0.5.
	PostInitSleep float64 `koanf:"post_init_sleep"`
	// Timeout in seconds; parsed but unused by fedmsg's core. Default 2.
	Timeout float64 `koanf:"timeout"`
	// PrintConfig makes commands print the configuration and exit
	// (--print-config). Default false.
	PrintConfig bool `koanf:"print_config"`
	// HighWaterMark is SNDHWM/RCVHWM. Default 0, which in gofedmsg means no
	// limit (Python fedmsg left libzmq's default of 1000 instead).
	HighWaterMark int `koanf:"high_water_mark"`
	// ZMQLinger is ZMQ_LINGER in milliseconds for active publishers.
	// Default 1000.
	ZMQLinger int `koanf:"zmq_linger"`
	// Active makes a publisher connect to relay_inbound instead of binding
	// its own endpoint. Default false.
	Active bool `koanf:"active"`
	// Name is the endpoints entry a publisher binds; "" lets the code guess
	// it. Default "".
	Name string `koanf:"name"`
	// Mute disables the publisher socket. Default false.
	Mute bool `koanf:"mute"`
	// PersistentStore is the replay store (any value; fedmsg uses an
	// object). Default nil.
	PersistentStore any `koanf:"persistent_store"`
	// Logging is a Python logging dictConfig; kept as a map. Default nil
	// (gofedmsg logs with log_format/log_level instead).
	Logging map[string]any `koanf:"logging"`

	// ---- ZeroMQ ----

	// ZMQEnabled selects ZeroMQ (true) or the hub's other transport (STOMP,
	// AMQP). Default true.
	ZMQEnabled bool `koanf:"zmq_enabled"`
	// ZMQStrict makes a subscription match the topic exactly instead of as
	// a prefix. Default false.
	ZMQStrict bool `koanf:"zmq_strict"`
	// ZMQTCPKeepalive is ZMQ_TCP_KEEPALIVE (-1 OS default, 0 off, 1 on).
	// Default 1 (shipped).
	ZMQTCPKeepalive int `koanf:"zmq_tcp_keepalive"`
	// ZMQTCPKeepaliveCnt is ZMQ_TCP_KEEPALIVE_CNT (-1 OS default). Default 3.
	ZMQTCPKeepaliveCnt int `koanf:"zmq_tcp_keepalive_cnt"`
	// ZMQTCPKeepaliveIdle is ZMQ_TCP_KEEPALIVE_IDLE in seconds (-1 OS
	// default). Default 60.
	ZMQTCPKeepaliveIdle int `koanf:"zmq_tcp_keepalive_idle"`
	// ZMQTCPKeepaliveIntvl is ZMQ_TCP_KEEPALIVE_INTVL in seconds (-1 OS
	// default). Default 5.
	ZMQTCPKeepaliveIntvl int `koanf:"zmq_tcp_keepalive_intvl"`
	// ZMQReconnectIvl is ZMQ_RECONNECT_IVL in milliseconds for SUB sockets.
	// Default 100 (shipped).
	ZMQReconnectIvl int `koanf:"zmq_reconnect_ivl"`
	// ZMQReconnectIvlMax is ZMQ_RECONNECT_IVL_MAX in milliseconds. Default
	// 1000 (shipped).
	ZMQReconnectIvlMax int `koanf:"zmq_reconnect_ivl_max"`
	// ZMQMaxMsgSize is the largest frame accepted, in bytes; larger frames
	// are dropped. NEW. Default 4194304 (4 MiB).
	ZMQMaxMsgSize int `koanf:"zmq_max_msg_size"`

	// ---- endpoints ----

	// Endpoints maps an endpoint name (relay_outbound, bodhi.app01, ...) to
	// its URLs. Each value may be written as a string or a list of strings.
	// Default {"relay_outbound": ["tcp://127.0.0.1:4001"]} (shipped
	// relay.py). The shipped fedora-infrastructure hub endpoint is left out
	// on purpose: the built-in default only talks to the loopback.
	Endpoints map[string][]string `koanf:"endpoints"`
	// RelayInbound is where fedmsg-relay's SUB binds and active publishers
	// connect; a string or a list. Default ["tcp://127.0.0.1:2003"]
	// (shipped).
	RelayInbound []string `koanf:"relay_inbound"`
	// SRVEndpoints lists domains whose _fedmsg._tcp SRV records add
	// endpoints; a string or a list. Default [].
	SRVEndpoints []string `koanf:"srv_endpoints"`
	// ReplayEndpoints maps an endpoint name to its replay (REQ/REP) URL.
	// Default {}.
	ReplayEndpoints map[string]string `koanf:"replay_endpoints"`
	// GatewayPort is fedmsg-gateway's PUB port. Default 9940.
	GatewayPort int `koanf:"fedmsg.consumers.gateway.port"`
	// GatewayHighWaterMark is fedmsg-gateway's HWM. Default 10000 (shipped;
	// the new config says 1000).
	GatewayHighWaterMark int `koanf:"fedmsg.consumers.gateway.high_water_mark"`

	// ---- signing and validation ----

	// SignMessages signs every published message. Default false.
	SignMessages bool `koanf:"sign_messages"`
	// ValidateSignatures rejects unsigned or badly signed messages. Default
	// false: that is the legacy core default (tail_messages treats the
	// missing key as false), whereas the shipped ssl.py and the new config
	// say true; without shipped certificates true would reject all traffic.
	ValidateSignatures bool `koanf:"validate_signatures"`
	// CryptoBackend is the signer: "x509" or "gpg". Default "x509".
	CryptoBackend string `koanf:"crypto_backend"`
	// CryptoValidateBackends lists the backends accepted when validating; a
	// string or a list. Default ["x509"].
	CryptoValidateBackends []string `koanf:"crypto_validate_backends"`
	// SSLDir holds <certname>.key and <certname>.crt. Default
	// "/etc/pki/fedmsg".
	SSLDir string `koanf:"ssldir"`
	// CACertLocation is the trust anchor, a path or an https URL. Default
	// "https://fedoraproject.org/fedmsg/ca.crt" (shipped).
	CACertLocation string `koanf:"ca_cert_location"`
	// CRLLocation is the CRL, a path or an https URL. nil (an explicit null
	// in a file) or "" means no CRL; see CRL. Default
	// "https://fedoraproject.org/fedmsg/crl.pem" (shipped), which is also
	// what fedmsg uses when the key is absent.
	CRLLocation *string `koanf:"crl_location"`
	// CRLCache is accepted but unused (as in fedmsg since 1.1). Default "".
	CRLCache string `koanf:"crl_cache"`
	// CRLCacheExpiry is accepted but unused, seconds. Default 3600.
	CRLCacheExpiry int `koanf:"crl_cache_expiry"`
	// CACertCache is accepted but unused. Default "".
	CACertCache string `koanf:"ca_cert_cache"`
	// CACertCacheExpiry is accepted but unused, seconds. Default 0.
	CACertCacheExpiry int `koanf:"ca_cert_cache_expiry"`
	// Certnames maps "<cert_prefix>.<short hostname>" (or "signing_relay")
	// to a certificate name. Default {}.
	Certnames map[string]string `koanf:"certnames"`
	// Certname is the certificate to sign with; normally derived from
	// certnames by the publisher. Default "".
	Certname string `koanf:"certname"`
	// CertPrefix is the first part of the certnames lookup key. Default "".
	CertPrefix string `koanf:"cert_prefix"`
	// RoutingPolicy maps a topic to the certificate CNs allowed to sign it;
	// each value a string or a list. Default {}.
	RoutingPolicy map[string][]string `koanf:"routing_policy"`
	// RoutingNitpicky rejects topics absent from routing_policy. Default
	// false.
	RoutingNitpicky bool `koanf:"routing_nitpicky"`
	// GPGHome is the GnuPG home directory. Default "".
	GPGHome string `koanf:"gpg_home"`
	// GPGSigningKey is the fingerprint of the key to sign with. Default "".
	GPGSigningKey string `koanf:"gpg_signing_key"`
	// GPGKeys maps "<cert_prefix>.<short hostname>" to a key fingerprint.
	// Default {}.
	GPGKeys map[string]string `koanf:"gpg_keys"`
	// GPGKeyring lists OpenPGP public key files (armored or binary) that
	// gpg validation trusts; empty means the keys found in gpg_home
	// (pubring.gpg, *.asc). New key: GnuPG 2's keybox (pubring.kbx) cannot
	// be read without the gpg binary, so export the keys to a file.
	GPGKeyring []string `koanf:"gpg_keyring"`
	// GPGSecretKeyring lists OpenPGP secret key files (exported with
	// gpg --export-secret-keys) for gpg signing; empty means the *.asc
	// and *.gpg files in gpg_home. New key, for the same reason.
	GPGSecretKeyring []string `koanf:"gpg_secret_keyring"`

	// ---- STOMP ----

	// StompURI is a comma-separated host:port list (no scheme). Default "".
	StompURI string `koanf:"stomp_uri"`
	// StompUser is the CONNECT login. Default "" (fedmsg sends "guest" when
	// the key is absent; the STOMP transport may do the same for "").
	StompUser string `koanf:"stomp_user"`
	// StompPass is the CONNECT passcode (secret). Default "".
	StompPass string `koanf:"stomp_pass"`
	// StompSSLCrt is the client certificate (PEM path); TLS needs both it
	// and StompSSLKey. Default "".
	StompSSLCrt string `koanf:"stomp_ssl_crt"`
	// StompSSLKey is the client key (PEM path). Default "".
	StompSSLKey string `koanf:"stomp_ssl_key"`
	// StompSSLCA is a CA bundle to verify the broker with. NEW. Default ""
	// (system trust store).
	StompSSLCA string `koanf:"stomp_ssl_ca"`
	// StompSSLVerify checks the broker's certificate when TLS is on
	// (stomp_ssl_* set). NEW. Default true; false skips the check and
	// logs a warning naming this key (anyone on the path can then read
	// and forge the traffic).
	StompSSLVerify bool `koanf:"stomp_ssl_verify"`
	// StompHeartbeat is the heart-beat interval offered, in ms. Default 0.
	StompHeartbeat int `koanf:"stomp_heartbeat"`
	// StompQueue, when set, is the only destination subscribed. Default "".
	StompQueue string `koanf:"stomp_queue"`
	// StompDurableName, when set and the broker is ActiveMQ, is the
	// connection's client-id and the name of its durable topic
	// subscriptions: persistent messages published while the subscriber
	// is away are kept, and deliveries are acked individually, so a
	// bridge route from it can be at-least-once. Refused on RabbitMQ (use
	// stomp_queue) and together with stomp_queue. NEW. Default "".
	StompDurableName string `koanf:"stomp_durable_name"`
	// StompAckMode is auto, client or client-individual. Default "auto".
	StompAckMode string `koanf:"stomp_ack_mode"`
	// StompSendExplicitNacks sends NACK for failed messages. Default true.
	StompSendExplicitNacks bool `koanf:"stomp_send_explicit_nacks"`
	// StompUnescapeHeaders unescapes incoming header values. Default true.
	StompUnescapeHeaders bool `koanf:"stomp_unescape_headers"`
	// StompDelay is the initial reconnect delay in seconds. Default 0.1.
	StompDelay float64 `koanf:"stomp_delay"`
	// StompBroker is the broker host used when stomp_uri is empty.
	// Default "".
	StompBroker string `koanf:"stomp_broker"`
	// StompPort is the broker port used with stomp_broker. Default 61613.
	StompPort int `koanf:"stomp_port"`
	// StompVhost is the CONNECT host header. NEW. Default "/".
	StompVhost string `koanf:"stomp_vhost"`

	// ---- AMQP (NEW) ----

	// AMQPBroker is moksha's (qpid) AMQP switch; accepted for
	// compatibility, unused by gofedmsg. Default "".
	AMQPBroker string `koanf:"amqp_broker"`
	// AMQPURL lists broker URLs (amqp:// or amqps://), tried in order; a
	// string or a list. NEW. Default [].
	AMQPURL []string `koanf:"amqp_url"`
	// AMQPExchange is the topic exchange. NEW. Default "amq.topic".
	AMQPExchange string `koanf:"amqp_exchange"`
	// AMQPQueue is the queue to consume from; "" means a private,
	// server-named queue. NEW. Default "".
	AMQPQueue string `koanf:"amqp_queue"`
	// AMQPPrefetch is the consumer prefetch count (0 = unlimited). NEW.
	// Default 100.
	AMQPPrefetch int `koanf:"amqp_prefetch"`
	// AMQPFormat is the message format on the wire: "fedmsg" (the
	// envelope verbatim as the body) or "fedora-messaging" (the envelope's
	// msg as the body with fedora-messaging's properties and headers, the
	// rest of the envelope in the x-fedmsg-envelope header). NEW. Default
	// "fedmsg".
	AMQPFormat string `koanf:"amqp_format"`
	// AMQPSSLCA is a CA bundle to verify the broker with. NEW. Default "".
	AMQPSSLCA string `koanf:"amqp_ssl_ca"`
	// AMQPSSLCrt is the client certificate (PEM path). NEW. Default "".
	AMQPSSLCrt string `koanf:"amqp_ssl_crt"`
	// AMQPSSLKey is the client key (PEM path). NEW. Default "".
	AMQPSSLKey string `koanf:"amqp_ssl_key"`
	// AMQPSSLVerify checks the broker's certificate on amqps:// URLs.
	// NEW. Default true; false skips the check and logs a warning naming
	// this key.
	AMQPSSLVerify bool `koanf:"amqp_ssl_verify"`

	// ---- consumers and commands ----

	// DatagrepperURL is used to fetch the backlog. Default "".
	DatagrepperURL string `koanf:"datagrepper_url"`
	// SkipLastMessage skips the backlog. Default false.
	SkipLastMessage bool `koanf:"skip_last_message"`
	// StatusDirectory holds consumers' last-seen message files. Default "".
	StatusDirectory string `koanf:"status_directory"`
	// IRC is the fedmsg-irc bot list (a list of maps), kept as parsed.
	// Default nil (no bots; the shipped demo bot is left out).
	IRC any `koanf:"irc"`
	// IRCColorLookup maps a topic part to an IRC colour. Default the shipped
	// table (fas light blue, bodhi green, ...).
	IRCColorLookup map[string]string `koanf:"irc_color_lookup"`
	// IRCDefaultColor is the colour of unknown topics. Default "light grey".
	IRCDefaultColor string `koanf:"irc_default_color"`
	// IRCMethod is notice or msg. Default "notice".
	IRCMethod string `koanf:"irc_method"`
	// CollectdInterval is fedmsg-collectd's period in seconds. Default 2.
	CollectdInterval int `koanf:"collectd_interval"`
	// ExplicitHubConsumers lists the consumers fedmsg-hub runs
	// (--with-consumers); a string or a list. Default nil (all enabled).
	ExplicitHubConsumers []string `koanf:"explicit_hub_consumers"`

	// ---- moksha ----

	// MokshaBlockingMode lets a consumer's result NACK a STOMP message.
	// Default false.
	MokshaBlockingMode bool `koanf:"moksha.blocking_mode"`
	// MokshaWorkersPerConsumer is the number of workers per consumer.
	// Default 1.
	MokshaWorkersPerConsumer int `koanf:"moksha.workers_per_consumer"`
	// MokshaThreadpoolSize is the hub's worker pool size; 0 lets the hub
	// choose. Default 0.
	MokshaThreadpoolSize int `koanf:"moksha.threadpool_size"`
	// MokshaMonitoringSocket is the monitoring PUB endpoint (fedmsg-check).
	// Default "" (off).
	MokshaMonitoringSocket string `koanf:"moksha.monitoring.socket"`
	// MokshaMonitoringSocketMode is the octal file mode of an ipc monitoring
	// socket, as a string ("770"). Default "".
	MokshaMonitoringSocketMode string `koanf:"moksha.monitoring.socket.mode"`
	// ZMQPublishEndpoints are the hub's PUB endpoints; moksha takes a
	// comma-separated string, also accepted here, as is a list. Default nil
	// (the commands set it).
	ZMQPublishEndpoints []string `koanf:"zmq_publish_endpoints" fedmsg:"comma"`
	// ZMQSubscribeEndpoints are the hub's SUB endpoints; comma-separated
	// string or list. Default nil (the commands set it).
	ZMQSubscribeEndpoints []string `koanf:"zmq_subscribe_endpoints" fedmsg:"comma"`
	// ZMQSubscribeMethod is connect or bind. Default "connect".
	ZMQSubscribeMethod string `koanf:"zmq_subscribe_method"`
	// TopicPrefixRe matches the prefix and environment of a topic. Default
	// "": Load derives it as regexp.QuoteMeta(topic_prefix) + `\.[^\W\d_]+`.
	TopicPrefixRe string `koanf:"topic_prefix_re"`

	// ---- gofedmsg (NEW) ----

	// MetricsAddr is the host:port of the metrics HTTP listener. NEW.
	// Default "" (off).
	MetricsAddr string `koanf:"metrics_addr"`
	// LogFormat is text or json. NEW. Default "text".
	LogFormat string `koanf:"log_format"`
	// LogLevel is debug, info, warn or error. NEW. Default "info".
	LogLevel string `koanf:"log_level"`

	// SpoolDir is where publishing through a broker (zmq_enabled false)
	// keeps messages until the broker confirmed them, so a broker
	// outage or a crash loses none (package spool). The bridge also
	// takes it as the default of bridge.spool_dir. NEW. Default "" (off
	// for the library).
	SpoolDir string `koanf:"spool_dir"`
	// SpoolMaxBytes bounds a spool file's messages. NEW. Default
	// 268435456 (256 MiB).
	SpoolMaxBytes int `koanf:"spool_max_bytes"`
	// SpoolFull is what a full spool does: "block" (the publisher waits
	// for room) or "drop-oldest" (counted, logged). NEW. Default "block".
	SpoolFull string `koanf:"spool_full"`

	// Extra holds the accepted keys that are not fields: consumer enable
	// switches (any key ending in ".enabled", e.g.
	// fedmsg.consumers.relay.enabled, a boolean) and moksha.livesocket and
	// moksha.livesocket.* (any value). Keyed by the flat fedmsg name.
	Extra map[string]any `koanf:"-"`
}

// Shipped fedmsg values used as defaults.
const (
	defaultCACert = "https://fedoraproject.org/fedmsg/ca.crt"
	defaultCRL    = "https://fedoraproject.org/fedmsg/crl.pem"
)

// Default returns a new Config holding the built-in defaults documented on
// each field. TopicPrefixRe is left empty (Load derives it).
func Default() *Config {
	crl := defaultCRL
	return &Config{
		TopicPrefix:     "org.fedoraproject",
		Environment:     "dev",
		IOThreads:       1,
		PostInitSleep:   0.5,
		Timeout:         2,
		PrintConfig:     false,
		HighWaterMark:   0,
		ZMQLinger:       1000,
		Active:          false,
		Name:            "",
		Mute:            false,
		PersistentStore: nil,
		Logging:         nil,

		ZMQEnabled:           true,
		ZMQStrict:            false,
		ZMQTCPKeepalive:      1,
		ZMQTCPKeepaliveCnt:   3,
		ZMQTCPKeepaliveIdle:  60,
		ZMQTCPKeepaliveIntvl: 5,
		ZMQReconnectIvl:      100,
		ZMQReconnectIvlMax:   1000,
		ZMQMaxMsgSize:        4194304,

		Endpoints:            map[string][]string{"relay_outbound": {"tcp://127.0.0.1:4001"}},
		RelayInbound:         []string{"tcp://127.0.0.1:2003"},
		SRVEndpoints:         []string{},
		ReplayEndpoints:      map[string]string{},
		GatewayPort:          9940,
		GatewayHighWaterMark: 10000,

		SignMessages:           false,
		ValidateSignatures:     false,
		CryptoBackend:          "x509",
		CryptoValidateBackends: []string{"x509"},
		SSLDir:                 "/etc/pki/fedmsg",
		CACertLocation:         defaultCACert,
		CRLLocation:            &crl,
		CRLCache:               "",
		CRLCacheExpiry:         3600,
		CACertCache:            "",
		CACertCacheExpiry:      0,
		Certnames:              map[string]string{},
		Certname:               "",
		CertPrefix:             "",
		RoutingPolicy:          map[string][]string{},
		RoutingNitpicky:        false,
		GPGHome:                "",
		GPGSigningKey:          "",
		GPGKeys:                map[string]string{},

		StompAckMode:           "auto",
		StompSendExplicitNacks: true,
		StompUnescapeHeaders:   true,
		StompDelay:             0.1,
		StompPort:              61613,
		StompVhost:             "/",
		StompSSLVerify:         true,

		AMQPURL:       []string{},
		AMQPExchange:  "amq.topic",
		AMQPPrefetch:  100,
		AMQPFormat:    "fedmsg",
		AMQPSSLVerify: true,

		IRCColorLookup: map[string]string{
			"fas":      "light blue",
			"bodhi":    "green",
			"git":      "red",
			"tagger":   "brown",
			"wiki":     "purple",
			"logger":   "orange",
			"pkgdb":    "teal",
			"buildsys": "yellow",
			"planet":   "light green",
		},
		IRCDefaultColor:  "light grey",
		IRCMethod:        "notice",
		CollectdInterval: 2,

		MokshaWorkersPerConsumer: 1,
		ZMQSubscribeMethod:       "connect",

		LogFormat: "text",
		LogLevel:  "info",

		SpoolMaxBytes: 256 << 20,
		SpoolFull:     "block",
	}
}

// CRL returns the CRL location, or "" when no CRL is to be used
// (crl_location null or empty).
func (c *Config) CRL() string {
	if c.CRLLocation == nil {
		return ""
	}
	return *c.CRLLocation
}

// Keys returns every known key (fedmsg names), sorted. The open-ended keys
// kept in Config.Extra are not listed.
func Keys() []string {
	out := make([]string, 0, len(fields))
	for _, f := range fields {
		out = append(out, f.key)
	}
	slices.Sort(out)
	return out
}

// DefaultDirs returns the directories read when Sources.Dirs is nil:
// /etc/fedmsg.d, ~/.fedmsg.d (when the home directory is known) and
// ./fedmsg.d, in that order, as fedmsg does.
func DefaultDirs() []string {
	dirs := []string{"/etc/fedmsg.d"}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		dirs = append(dirs, filepath.Join(home, ".fedmsg.d"))
	}
	return append(dirs, "./fedmsg.d")
}
