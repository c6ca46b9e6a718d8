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
		ReconnectDelay: time.Duration(cfg.StompDelay * float64(time.Second)),
		Logger:         log,
	}
	var err error
	o.TLS, err = clientTLS(tlsfiles.Files{
		CA: cfg.StompSSLCA, Cert: cfg.StompSSLCrt, Key: cfg.StompSSLKey,
		CAKey: "stomp_ssl_ca", CertKey: "stomp_ssl_crt", KeyKey: "stomp_ssl_key",
	})
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
	})
	return o, err
}

// clientTLS is nil (plain, or the system roots for amqps://) when no TLS
// file is configured; the transports fill in ServerName per address.
func clientTLS(files tlsfiles.Files) (*tls.Config, error) {
	if !files.Enabled() {
		return nil, nil
	}
	tc, err := files.Config("")
	if err != nil {
		return nil, fmt.Errorf("fedmsg: %w", err)
	}
	return tc, nil
}
