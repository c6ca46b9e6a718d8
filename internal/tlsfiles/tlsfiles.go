// Package tlsfiles builds a client tls.Config from the PEM files fedmsg's
// configuration names (stomp_ssl_ca / stomp_ssl_crt / stomp_ssl_key, and
// the amqp_ssl_* keys), with errors that name the key and file at fault.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Files names the PEM files and the configuration keys they came from
// (the keys are only used in error messages).
type Files struct {
	CA, Cert, Key          string // paths; "" = not set
	CAKey, CertKey, KeyKey string // e.g. "stomp_ssl_ca"
}

// ErrHalfPair: a client certificate without its key, or the reverse.
var ErrHalfPair = errors.New("tlsfiles: a client certificate needs both its certificate and key files")

// Enabled reports whether any TLS file is set, which is what turns TLS on.
func (f Files) Enabled() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

// Config returns a TLS 1.2+ client configuration for serverName: the
// broker is verified against CA when set, else against the system roots
// (never skipped); Cert and Key, when both set, are the client certificate.
func (f Files) Config(serverName string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name(f.CAKey, "CA file"), err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: %s holds no PEM certificate", name(f.CAKey, "CA file"), f.CA)
		}
		c.RootCAs = pool
	}
	if (f.Cert == "") != (f.Key == "") {
		return nil, fmt.Errorf("%w: %s=%q, %s=%q", ErrHalfPair,
			name(f.CertKey, "certificate"), f.Cert, name(f.KeyKey, "key"), f.Key)
	}
	if f.Cert != "" {
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("%s / %s (%s, %s): %w",
				name(f.CertKey, "certificate"), name(f.KeyKey, "key"), f.Cert, f.Key, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

func name(key, fallback string) string {
	if key != "" {
		return key
	}
	return fallback
}
