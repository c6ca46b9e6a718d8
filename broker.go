package fedmsg

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/internal/keyperm"
	"github.com/gofedmsg/fedmsg/internal/tlsfiles"
	"github.com/gofedmsg/fedmsg/transport"
	"github.com/gofedmsg/fedmsg/transport/amqp"
	"github.com/gofedmsg/fedmsg/transport/stomp"
)

// ErrNoBroker: zmq_enabled is false and no broker is configured.
var ErrNoBroker = errors.New("fedmsg: zmq_enabled is false and no broker is configured: set stomp_uri (or stomp_broker) for STOMP, or amqp_url for AMQP")

// BrokerTransport builds the transport a context uses when zmq_enabled is
// false: STOMP when stomp_uri (or stomp_broker) is set, else AMQP when
// amqp_url is set. The name says which, for logs and errors. The
// transport connects in the background; the first Publish waits for it.
func BrokerTransport(cfg *config.Config, log *slog.Logger) (t transport.Transport, name string, err error) {
	switch {
	case cfg.StompURI != "" || cfg.StompBroker != "":
		t, err = OpenTransport(context.Background(), KindSTOMP, cfg, log)
		return t, "stomp", err
	case len(cfg.AMQPURL) > 0:
		t, err = OpenTransport(context.Background(), KindAMQP, cfg, log)
		return t, "amqp", err
	}
	return nil, "", ErrNoBroker
}

// StompOptions translates fedmsg's stomp_* keys into STOMP transport
// options: stomp_uri is a comma-separated host:port failover list, with
// stomp_broker and stomp_port as fedmsg's fallback.
func StompOptions(cfg *config.Config, log *slog.Logger) (stomp.Options, error) {
	var addrs []string
	for _, a := range strings.Split(cfg.StompURI, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 && cfg.StompBroker != "" {
		port := cfg.StompPort
		if port == 0 {
			port = 61613
		}
		addrs = []string{cfg.StompBroker + ":" + strconv.Itoa(port)}
	}
	o := stomp.Options{
		Addrs:          addrs,
		Vhost:          cfg.StompVhost,
		Login:          cfg.StompUser,
		Passcode:       cfg.StompPass,
		HeartBeat:      time.Duration(cfg.StompHeartbeat) * time.Millisecond,
		Queue:          cfg.StompQueue,
		DurableName:    cfg.StompDurableName,
		ReconnectDelay: time.Duration(cfg.StompDelay * float64(time.Second)),
		Logger:         log,
	}
	var err error
	o.TLS, err = clientTLS(tlsfiles.Files{
		CA: cfg.StompSSLCA, Cert: cfg.StompSSLCrt, Key: cfg.StompSSLKey,
		CAKey: "stomp_ssl_ca", CertKey: "stomp_ssl_crt", KeyKey: "stomp_ssl_key",
	}, tlsPolicy{verify: cfg.StompSSLVerify, verifyKey: "stomp_ssl_verify"}, log)
	return o, err
}

// AMQPOptions translates the amqp_* keys into AMQP transport options.
func AMQPOptions(cfg *config.Config, log *slog.Logger) (amqp.Options, error) {
	o := amqp.Options{
		URLs:     cfg.AMQPURL,
		Exchange: cfg.AMQPExchange,
		Queue:    cfg.AMQPQueue,
		Prefetch: cfg.AMQPPrefetch,
		Format:   cfg.AMQPFormat,
		Logger:   log,
	}
	var err error
	o.TLS, err = clientTLS(tlsfiles.Files{
		CA: cfg.AMQPSSLCA, Cert: cfg.AMQPSSLCrt, Key: cfg.AMQPSSLKey,
		CAKey: "amqp_ssl_ca", CertKey: "amqp_ssl_crt", KeyKey: "amqp_ssl_key",
	}, tlsPolicy{verify: cfg.AMQPSSLVerify, verifyKey: "amqp_ssl_verify", urlSelectsTLS: anyAMQPS(cfg.AMQPURL)}, log)
	return o, err
}

// anyAMQPS reports whether any of urls is dialled with TLS.
func anyAMQPS(urls []string) bool {
	for _, u := range urls {
		u = strings.TrimSpace(u)
		if len(u) >= 8 && strings.EqualFold(u[:8], "amqps://") {
			return true
		}
	}
	return false
}

// tlsPolicy is how one transport's TLS keys behave.
type tlsPolicy struct {
	verify    bool   // the *_ssl_verify key
	verifyKey string // its name, for the warning
	// urlSelectsTLS: a URL chose TLS (amqps://) rather than the files,
	// so turning verification off needs a configuration even when no
	// file is set. For STOMP the files turn TLS on, and without them (or
	// without an amqps:// URL) there is nothing to verify.
	urlSelectsTLS bool
}

// clientTLS is nil (plain, or the system roots for amqps://) when no TLS
// file is configured and verification is on; the transports fill in
// ServerName per address. Verification is only ever off when the
// configuration says so, and then a warning names the key. A client key
// open to group or others is warned about, naming the file.
func clientTLS(files tlsfiles.Files, p tlsPolicy, log *slog.Logger) (*tls.Config, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !files.Enabled() && (p.verify || !p.urlSelectsTLS) {
		return nil, nil
	}
	tc, err := files.Config("")
	if err != nil {
		return nil, fmt.Errorf("fedmsg: %w", err)
	}
	keyperm.Warn(log, files.KeyKey, files.Key)
	if !p.verify {
		tc.InsecureSkipVerify = true
		log.Warn("TLS: the broker's certificate is NOT verified: anyone on the network path can pose as the broker and read or forge messages; set it to true (and a CA file if the broker's is private)",
			"key", p.verifyKey, "value", false)
	}
	return tc, nil
}
