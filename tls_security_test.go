package fedmsg_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg"
	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/internal/brokertest"
	"github.com/gofedmsg/fedmsg/transport"
)

// syncBuffer is a log sink the transports' goroutines may write to while
// the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// otherCA writes a CA certificate that signed nothing the brokers show.
func otherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "not the brokers' CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// publishOnce opens kind's transport from cfg and publishes one message
// within d, returning Publish's error and what the transport logged.
func publishOnce(t *testing.T, kind string, cfg *config.Config, d time.Duration) (string, error) {
	t.Helper()
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	tr, err := fedmsg.OpenTransport(ctx, kind, cfg, log)
	if err != nil {
		return logs.String(), err
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		tr.Close(cctx)
	}()
	topic := "org.tlstest.dev.probe"
	err = tr.Publish(ctx, &transport.Message{Topic: topic, Body: []byte(`{"topic":"` + topic + `","msg":{}}`)})
	return logs.String(), err
}

// The broker's certificate is checked against the configured CA: with a
// CA that did not sign it, no message goes out; with stomp_ssl_verify /
// amqp_ssl_verify false it does, and a warning names the key; with the
// right CA it does, silently. Against RabbitMQ's real TLS listeners
// (AMQPS 5671, STOMP+TLS 61614).
func TestBrokerTLSVerification(t *testing.T) {
	pki := brokertest.TLS(t)
	wrongCA := otherCA(t)
	for _, tc := range []struct {
		name      string
		broker    brokertest.Broker
		kind      string
		verifyKey string
		set       func(c *config.Config, ca string, verify bool)
	}{
		{"AMQPS", brokertest.RabbitAMQPS, fedmsg.KindAMQP, "amqp_ssl_verify", func(c *config.Config, ca string, verify bool) {
			_, port, _ := strings.Cut(brokertest.RabbitAMQPS.Addr, ":")
			c.AMQPURL = []string{"amqps://guest:guest@localhost:" + port + "/"}
			c.AMQPSSLCA, c.AMQPSSLVerify = ca, verify
		}},
		{"STOMP+TLS", brokertest.RabbitSTOMPTLS, fedmsg.KindSTOMP, "stomp_ssl_verify", func(c *config.Config, ca string, verify bool) {
			_, port, _ := strings.Cut(brokertest.RabbitSTOMPTLS.Addr, ":")
			c.StompURI = "localhost:" + port
			c.StompSSLCrt, c.StompSSLKey = pki.ClientCert, pki.ClientKey
			c.StompSSLCA, c.StompSSLVerify = ca, verify
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			brokertest.Use(t, tc.broker)
			cfg := func(ca string, verify bool) *config.Config {
				c := config.Default()
				c.ZMQEnabled = false
				tc.set(c, ca, verify)
				return c
			}

			logs, err := publishOnce(t, tc.kind, cfg(wrongCA, true), 4*time.Second)
			if err == nil {
				t.Errorf("a broker whose certificate the CA did not sign took a message; log:\n%s", logs)
			} else if !strings.Contains(err.Error()+logs, "certificate") {
				t.Errorf("the refusal does not say it is about the certificate: %v; log:\n%s", err, logs)
			}
			if strings.Contains(logs, tc.verifyKey) {
				t.Errorf("warned about %s with verification on:\n%s", tc.verifyKey, logs)
			}

			logs, err = publishOnce(t, tc.kind, cfg(wrongCA, false), 20*time.Second)
			if err != nil {
				t.Errorf("%s false: %v; log:\n%s", tc.verifyKey, err, logs)
			}
			if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "key="+tc.verifyKey) {
				t.Errorf("%s false: no warning naming the key; log:\n%s", tc.verifyKey, logs)
			}

			logs, err = publishOnce(t, tc.kind, cfg(pki.CA, true), 20*time.Second)
			if err != nil {
				t.Errorf("the right CA: %v; log:\n%s", err, logs)
			}
			if strings.Contains(logs, tc.verifyKey) {
				t.Errorf("the right CA: warned about %s:\n%s", tc.verifyKey, logs)
			}
		})
	}
}

// Without any TLS file, amqps:// is verified against the system roots,
// which do not hold the test CA: refused, not silently unverified.
func TestAMQPSVerifiesWithoutCAFile(t *testing.T) {
	brokertest.Use(t, brokertest.RabbitAMQPS)
	cfg := config.Default()
	cfg.ZMQEnabled = false
	_, port, _ := strings.Cut(brokertest.RabbitAMQPS.Addr, ":")
	cfg.AMQPURL = []string{"amqps://guest:guest@localhost:" + port + "/"}
	if logs, err := publishOnce(t, fedmsg.KindAMQP, cfg, 4*time.Second); err == nil {
		t.Errorf("amqps:// without a CA file trusted the test broker; log:\n%s", logs)
	}
	o, err := fedmsg.AMQPOptions(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.TLS != nil && (o.TLS.InsecureSkipVerify || o.TLS.MinVersion < tls.VersionTLS12) {
		t.Errorf("default AMQP TLS config %+v is weak", o.TLS)
	}
}

// Every TLS configuration the keys can produce asks for TLS 1.2 or later.
func TestTLSMinimumVersion(t *testing.T) {
	pki := brokertest.TLS(t)
	cfg := config.Default()
	cfg.StompSSLCA, cfg.StompSSLCrt, cfg.StompSSLKey = pki.CA, pki.ClientCert, pki.ClientKey
	cfg.AMQPSSLVerify = false
	cfg.AMQPURL = []string{"AMQPS://broker.example.com/"}
	so, err := fedmsg.StompOptions(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ao, err := fedmsg.AMQPOptions(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if so.TLS == nil || so.TLS.MinVersion < tls.VersionTLS12 || so.TLS.InsecureSkipVerify {
		t.Errorf("stomp TLS %+v: want TLS 1.2+, verified", so.TLS)
	}
	if ao.TLS == nil || ao.TLS.MinVersion < tls.VersionTLS12 || !ao.TLS.InsecureSkipVerify {
		t.Errorf("amqp TLS with amqp_ssl_verify false %+v: want TLS 1.2+, unverified", ao.TLS)
	}
	// Off with no TLS in use: nothing to skip, nothing to warn about.
	cfg.AMQPURL = []string{"amqp://broker.example.com/"}
	var logs syncBuffer
	if ao, err := fedmsg.AMQPOptions(cfg, slog.New(slog.NewTextHandler(&logs, nil))); err != nil || ao.TLS != nil || logs.String() != "" {
		t.Errorf("amqp_ssl_verify false with amqp:// only: TLS %+v, %v, log %q; want none", ao.TLS, err, logs.String())
	}
}
