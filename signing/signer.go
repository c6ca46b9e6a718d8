package signing

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"github.com/gofedmsg/fedmsg/message"
)

// Signer is what the commands and the signing relay use to sign an
// envelope. X509Signer implements it, and so does the gpg package's signer.
// Sign returns a signed copy and leaves env untouched.
type Signer interface {
	Sign(env map[string]any) (map[string]any, error)
}

// X509Signer signs envelopes like fedmsg's x509 backend (spec §4.2). It is
// immutable after construction and safe for concurrent use.
type X509Signer struct {
	key        *rsa.PrivateKey
	cert       *x509.Certificate
	certField  string // wrapped base64 of the certificate's PEM, ready to send
	commonName string
	certFile   string
	keyFile    string
}

var _ Signer = (*X509Signer)(nil)

// NewX509Signer loads a PEM certificate (only the first certificate of the
// file is used, as fedmsg does) and an unencrypted PEM RSA private key in
// PKCS#1 ("RSA PRIVATE KEY") or PKCS#8 ("PRIVATE KEY") form. The key must
// belong to the certificate. Problems with the files wrap ErrNoCertificate.
func NewX509Signer(certFile, keyFile string) (*X509Signer, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("%w: reading certificate: %w", ErrNoCertificate, err)
	}
	der, err := firstPEM(certPEM, "CERTIFICATE", "X509 CERTIFICATE")
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoCertificate, certFile, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: parsing certificate: %w", ErrNoCertificate, certFile, err)
	}
	certPub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s: the certificate's key is %T, fedmsg signs with RSA only", ErrNoCertificate, certFile, cert.PublicKey)
	}

	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: reading private key: %w", ErrNoCertificate, err)
	}
	key, err := parseRSAKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoCertificate, keyFile, err)
	}
	if !key.PublicKey.Equal(certPub) {
		return nil, fmt.Errorf("%w: private key %s does not match certificate %s", ErrNoCertificate, keyFile, certFile)
	}
	// Make sure signing works at all (e.g. key size accepted by crypto/rsa)
	// now rather than on the first message.
	probe := sha1.Sum(nil)
	if _, err := rsa.SignPKCS1v15(nil, key, crypto.SHA1, probe[:]); err != nil {
		return nil, fmt.Errorf("%w: %s: key unusable for RSA/SHA-1 signatures: %w", ErrNoCertificate, keyFile, err)
	}
	key.Precompute()

	cn, _ := firstCN(cert)
	// Python re-encodes the parsed certificate as PEM: 64-column body and a
	// trailing newline, which is what encoding/pem writes.
	reencoded := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	return &X509Signer{
		key:        key,
		cert:       cert,
		certField:  wrapBase64(reencoded),
		commonName: cn,
		certFile:   certFile,
		keyFile:    keyFile,
	}, nil
}

// LoadX509Signer finds the key pair fedmsg would use: certname =
// certnames[index], files <ssldir>/<certname>.crt and <ssldir>/<certname>.key
// (spec §4.1). A missing certnames entry or missing files wrap
// ErrNoCertificate.
func LoadX509Signer(ssldir string, certnames map[string]string, index string) (*X509Signer, error) {
	certname, ok := certnames[index]
	if !ok {
		return nil, fmt.Errorf("%w: no certname for %q: set certnames[%q] in the configuration", ErrNoCertificate, index, index)
	}
	if certname == "" {
		return nil, fmt.Errorf("%w: certnames[%q] is empty", ErrNoCertificate, index)
	}
	base := filepath.Join(ssldir, certname)
	s, err := NewX509Signer(base+".crt", base+".key")
	if err != nil {
		return nil, fmt.Errorf("certnames[%q] = %q: %w", index, certname, err)
	}
	return s, nil
}

// CertIndex returns the certnames index fedmsg signs with (spec §4.1):
// "<certPrefix>.<shortHostname>" when certPrefix is set, else the endpoint
// name, where "relay_inbound" maps to "shell.<shortHostname>".
func CertIndex(certPrefix, name, shortHostname string) string {
	if certPrefix != "" {
		return certPrefix + "." + shortHostname
	}
	if name == "relay_inbound" {
		return "shell." + shortHostname
	}
	return name
}

// CommonName returns the first commonName of the signer's certificate, the
// identity receivers check against routing_policy.
func (s *X509Signer) CommonName() string { return s.commonName }

// Certificate returns the signer's certificate.
func (s *X509Signer) Certificate() *x509.Certificate { return s.cert }

// Sign returns a copy of env with crypto="x509", signature and certificate
// set (spec §4.2). The signature covers the canonical JSON of the copy
// without signature and certificate, crypto included; credentials already
// present in env are replaced, not signed over (Python's signing relay
// signs over them and produces messages that can never validate). env is
// not modified; nested values are shared with it.
func (s *X509Signer) Sign(env map[string]any) (map[string]any, error) {
	if env == nil {
		return nil, fmt.Errorf("%w: nil envelope", ErrMalformed)
	}
	out := make(map[string]any, len(env)+3)
	maps.Copy(out, env)
	delete(out, message.FieldSignature)
	delete(out, message.FieldCertificate)
	out[message.FieldCrypto] = "x509"
	data, err := message.Canonical(out)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	sig, err := s.signBytes(data)
	if err != nil {
		return nil, err
	}
	out[message.FieldSignature] = wrapBase64(sig)
	out[message.FieldCertificate] = s.certField
	return out, nil
}

func (s *X509Signer) signBytes(data []byte) ([]byte, error) {
	digest := sha1.Sum(data)
	sig, err := rsa.SignPKCS1v15(nil, s.key, crypto.SHA1, digest[:])
	if err != nil {
		return nil, fmt.Errorf("signing: RSA signature with %s: %w", s.keyFile, err)
	}
	return sig, nil
}

// SignBody decodes envelope JSON (as json.loads would), signs it and returns
// the canonical JSON of the signed envelope: the bytes fedmsg would put on
// the wire. Undecodable input or a non-object wraps ErrMalformed.
func (s *X509Signer) SignBody(body []byte) ([]byte, error) {
	env, err := message.DecodeObject(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	signed, err := s.Sign(env)
	if err != nil {
		return nil, err
	}
	out, err := message.Canonical(signed)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return out, nil
}

// firstPEM returns the DER bytes of the first PEM block in data whose type
// is one of types, skipping any other text and blocks (as OpenSSL's
// PEM_read_bio does).
func firstPEM(data []byte, types ...string) ([]byte, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("no PEM %s block found", types[0])
		}
		for _, t := range types {
			if block.Type == t {
				return block.Bytes, nil
			}
		}
	}
}

func parseRSAKey(data []byte) (*rsa.PrivateKey, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		switch block.Type {
		case "RSA PRIVATE KEY":
			if _, encrypted := block.Headers["Proc-Type"]; encrypted {
				return nil, errors.New("encrypted private keys are not supported (fedmsg loads keys without a password)")
			}
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parsing PKCS#1 private key: %w", err)
			}
			return k, nil
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parsing PKCS#8 private key: %w", err)
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("private key is %T, fedmsg signs with RSA only", k)
			}
			return rk, nil
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("encrypted private keys are not supported (fedmsg loads keys without a password)")
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			return nil, fmt.Errorf("unsupported private key type %q (need RSA)", block.Type)
		}
	}
}

// firstCN returns the value of the first commonName attribute of the
// certificate's subject in the order it appears in the certificate (what
// cryptography's get_attributes_for_oid(COMMON_NAME)[0] returns); false
// when there is none.
func firstCN(c *x509.Certificate) (string, bool) {
	for _, atv := range c.Subject.Names {
		if atv.Type.Equal(oidCommonName) {
			if s, ok := atv.Value.(string); ok {
				return s, true
			}
			return fmt.Sprint(atv.Value), true
		}
	}
	return "", false
}

var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}
