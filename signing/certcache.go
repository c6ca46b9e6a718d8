package signing

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// certEntry is everything about one certificate field that does not change
// from message to message. The decoded part is immutable; the verdict is
// recomputed when the trust state's generation changes.
type certEntry struct {
	b64Err   error             // the field is not base64 (wraps ErrMalformed)
	parseErr error             // not a PEM certificate, or bad DER (wraps ErrMalformed)
	cert     *x509.Certificate // nil when either error is set

	pub    *rsa.PublicKey // nil when the key is not RSA
	keyErr error          // set when pub is nil

	cn    string
	hasCN bool

	verdict atomic.Pointer[chainVerdict]
}

// chainVerdict caches the time-independent results of verifying a
// certificate against one trust state, split by the step of OpenSSL's
// X509_verify_cert they belong to so that errors keep OpenSSL's order.
type chainVerdict struct {
	gen     uint64
	issuer  error // chain building and CA checks (ErrUntrusted)
	revoked error // CRL lookup of the certificate and the CA (ErrRevoked)
	sig     error // the CA's signature on the certificate (ErrUntrusted)
}

func newCertEntry(field string) *certEntry {
	e := &certEntry{}
	var buf [2048]byte
	pemText, err := decodeBase64(buf[:0], field)
	if err != nil {
		e.b64Err = fmt.Errorf("certificate: %w", err)
		return e
	}
	der, err := firstPEM(pemText, "CERTIFICATE", "X509 CERTIFICATE")
	if err != nil {
		e.parseErr = fmt.Errorf("%w: certificate field: %w", ErrMalformed, err)
		return e
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		e.parseErr = fmt.Errorf("%w: certificate field: %w", ErrMalformed, err)
		return e
	}
	e.cert = cert
	if pub, ok := cert.PublicKey.(*rsa.PublicKey); ok {
		e.pub = pub
	} else {
		e.keyErr = fmt.Errorf("%w: certificate key is %s, fedmsg signatures are RSA only", ErrMalformed, cert.PublicKeyAlgorithm)
	}
	e.cn, e.hasCN = firstCN(cert)
	return e
}

// verdictFor returns the cached verdict for st, computing it when missing
// or computed for another generation. Concurrent computations of the same
// verdict are harmless (same result).
func (e *certEntry) verdictFor(st *trustState) *chainVerdict {
	if vd := e.verdict.Load(); vd != nil && vd.gen == st.gen {
		return vd
	}
	vd := computeVerdict(e.cert, st)
	e.verdict.Store(vd)
	return vd
}

// computeVerdict checks cert against the CA and CRL of st the way OpenSSL's
// X509_verify_cert does with a store holding only the CA (and the CRL, with
// CRL_CHECK|CRL_CHECK_ALL): the issuer must be the CA (name, key
// identifier, key usage), the CA must be a CA, no unhandled critical
// extensions, neither certificate revoked, and the CA's signature valid.
// Time checks are left to the caller (they change per message).
func computeVerdict(cert *x509.Certificate, st *trustState) *chainVerdict {
	ca := st.ca
	vd := &chainVerdict{gen: st.gen}
	selfAnchor := bytes.Equal(cert.Raw, ca.Raw) // the CA certificate itself
	switch {
	case selfAnchor:
	case !bytes.Equal(cert.RawIssuer, ca.RawSubject):
		vd.issuer = fmt.Errorf("%w: unable to get local issuer certificate (issuer %q, CA %q)",
			ErrUntrusted, cert.Issuer.String(), ca.Subject.String())
	case len(cert.AuthorityKeyId) > 0 && len(ca.SubjectKeyId) > 0 && !bytes.Equal(cert.AuthorityKeyId, ca.SubjectKeyId):
		vd.issuer = fmt.Errorf("%w: unable to get local issuer certificate (authority key identifier does not match the CA %q)",
			ErrUntrusted, ca.Subject.String())
	case ca.KeyUsage != 0 && ca.KeyUsage&x509.KeyUsageCertSign == 0:
		vd.issuer = fmt.Errorf("%w: unable to get local issuer certificate (the CA %q may not sign certificates)",
			ErrUntrusted, ca.Subject.String())
	case ca.BasicConstraintsValid && !ca.IsCA,
		!ca.BasicConstraintsValid && ca.Version != 1 && ca.KeyUsage == 0:
		vd.issuer = fmt.Errorf("%w: invalid CA certificate %q", ErrUntrusted, ca.Subject.String())
	case len(cert.UnhandledCriticalExtensions) > 0:
		vd.issuer = fmt.Errorf("%w: unhandled critical extension in the certificate", ErrUntrusted)
	case len(ca.UnhandledCriticalExtensions) > 0:
		vd.issuer = fmt.Errorf("%w: unhandled critical extension in the CA certificate", ErrUntrusted)
	}
	if vd.issuer != nil {
		return vd
	}
	if st.revoked != nil {
		if _, ok := st.revoked[serialKey(cert.SerialNumber)]; ok {
			vd.revoked = fmt.Errorf("%w: serial %s (%s) is listed in the CRL", ErrRevoked, serialKey(cert.SerialNumber), cert.Subject.String())
		} else if _, ok := st.revoked[serialKey(ca.SerialNumber)]; ok {
			vd.revoked = fmt.Errorf("%w: the CA certificate (serial %s) is listed in its own CRL", ErrRevoked, serialKey(ca.SerialNumber))
		}
	}
	if !selfAnchor {
		if err := ca.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
			vd.sig = fmt.Errorf("%w: certificate signature failure: %w", ErrUntrusted, err)
		}
	}
	return vd
}

// certCache maps certificate fields to their entries. It is bounded: when
// full, an arbitrary entry (Go's map iteration order is randomised) makes
// room for the new one.
type certCache struct {
	mu  sync.RWMutex
	m   map[string]*certEntry
	max int
}

func (c *certCache) get(field string) *certEntry {
	c.mu.RLock()
	e, ok := c.m[field]
	c.mu.RUnlock()
	if ok {
		return e
	}
	e = newCertEntry(field)
	c.mu.Lock()
	if old, ok := c.m[field]; ok {
		c.mu.Unlock()
		return old
	}
	if len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[field] = e
	c.mu.Unlock()
	return e
}

func (c *certCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// validityError checks now against the certificate's validity period as
// OpenSSL does (whole seconds; valid from notBefore inclusive until notAfter
// exclusive).
func validityError(c *x509.Certificate, now time.Time, what string) error {
	t := now.Unix()
	if c.NotBefore.Unix() > t {
		return fmt.Errorf("%w: %s %q is not yet valid (notBefore %s)", ErrCertNotValid, what, c.Subject.String(), c.NotBefore.UTC().Format(time.RFC3339))
	}
	if c.NotAfter.Unix() <= t {
		return fmt.Errorf("%w: %s %q has expired (notAfter %s)", ErrCertNotValid, what, c.Subject.String(), c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}
