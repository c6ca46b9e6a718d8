package signing

import (
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/signing/gpg"
)

// Backend names, the values of the envelope's crypto field and of
// crypto_validate_backends.
const (
	BackendX509 = "x509"
	BackendGPG  = "gpg"
)

// Defaults for the Options fields that have one.
const (
	DefaultMinRefreshInterval = 10 * time.Second
	DefaultMaxRefreshBackoff  = 5 * time.Minute
	DefaultFetchTimeout       = 30 * time.Second
	DefaultCertCacheSize      = 4096
)

// Options configure a Validator. The caller translates fedmsg's
// configuration keys into it (ca_cert_location, crl_location,
// ca_cert_cache[_expiry], crl_cache[_expiry], routing_policy,
// routing_nitpicky, crypto_validate_backends).
type Options struct {
	// CACertLocation is the trust anchor: a path, a file:// URL or an
	// http(s):// URL. Only the first PEM certificate in it is used.
	// Required when x509 is among the backends.
	CACertLocation string
	// CRLLocation is the CRL, same forms. nil or "" means no CRL:
	// revocation is not checked. (fedmsg's default URL is not applied
	// here; the caller decides.)
	CRLLocation *string
	// CACertCache and CRLCache are optional files where downloaded copies
	// are kept (written atomically). At start a fresh cache file is used
	// instead of downloading, and a stale one when the download fails.
	CACertCache, CRLCache string
	// CACertCacheExpiry and CRLCacheExpiry: how long a copy is used before
	// it is fetched again. 0 means fetch once (it is still reloaded after a
	// verification failure, as fedmsg does).
	CACertCacheExpiry, CRLCacheExpiry time.Duration

	RoutingPolicy   map[string][]string
	RoutingNitpicky bool
	// Backends is crypto_validate_backends: "x509" and/or "gpg". Empty
	// means ["x509"].
	Backends []string
	// GPG verifies gpg-signed messages. nil: such messages fail with
	// ErrTrustUnavailable (ErrBackendDisallowed when "gpg" is not in
	// Backends).
	GPG *gpg.Keyring

	// HTTPClient downloads http(s) locations; nil uses a private client.
	HTTPClient *http.Client
	// FetchTimeout bounds one download (default 30s).
	FetchTimeout time.Duration
	// MinRefreshInterval is the least time between two automatic reloads
	// of the CA/CRL (default 10s); after failed reloads the interval
	// doubles up to MaxRefreshBackoff (default 5m).
	MinRefreshInterval, MaxRefreshBackoff time.Duration
	// CertCacheSize bounds the per-certificate cache (default 4096).
	CertCacheSize int

	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
	// Logger receives reload events; nil discards them.
	Logger *slog.Logger
}

// Validator validates signed fedmsg envelopes (spec §4.3-4.4, §5). It is safe
// for concurrent use.
type Validator struct {
	opts      Options
	allowX509 bool
	allowGPG  bool
	log       *slog.Logger
	client    *http.Client
	caSrc     source
	crlSrc    source
	certs     certCache

	state       atomic.Pointer[trustState] // nil until a first successful load
	gen         atomic.Uint64
	nextAllowed atomic.Int64 // unix nanoseconds before which no automatic reload happens

	mu       sync.Mutex // serialises reloads; guards failures
	failures int
	lastErr  atomic.Pointer[error] // why the last reload failed; nil after a good one
}

// NewValidator checks the options and loads the CA and CRL. It fails only
// for invalid options: a CA or CRL that cannot be loaded is logged, reported
// by LoadError, makes x509 validations fail with ErrTrustUnavailable, and is
// retried (with backoff) as messages arrive or when Refresh is called.
func NewValidator(o Options) (*Validator, error) {
	backends := o.Backends
	if len(backends) == 0 {
		backends = []string{BackendX509}
	}
	v := &Validator{}
	for _, b := range backends {
		switch b {
		case BackendX509:
			v.allowX509 = true
		case BackendGPG:
			v.allowGPG = true
		default:
			return nil, fmt.Errorf("signing: %q is not a valid crypto_validate_backends entry (want %q or %q)", b, BackendX509, BackendGPG)
		}
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = DefaultFetchTimeout
	}
	if o.MinRefreshInterval <= 0 {
		o.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if o.MaxRefreshBackoff <= 0 {
		o.MaxRefreshBackoff = DefaultMaxRefreshBackoff
	}
	o.MaxRefreshBackoff = max(o.MaxRefreshBackoff, o.MinRefreshInterval)
	if o.CertCacheSize <= 0 {
		o.CertCacheSize = DefaultCertCacheSize
	}
	if o.CACertCacheExpiry < 0 || o.CRLCacheExpiry < 0 {
		return nil, errors.New("signing: negative cache expiry")
	}
	o.Backends = backends
	v.opts = o
	v.log = o.Logger
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	v.client = o.HTTPClient
	if v.client == nil {
		v.client = &http.Client{Timeout: o.FetchTimeout}
	}
	v.certs = certCache{m: make(map[string]*certEntry), max: o.CertCacheSize}
	crl := ""
	if o.CRLLocation != nil {
		crl = *o.CRLLocation
	}
	v.caSrc = source{what: "CA certificate", location: o.CACertLocation, cache: o.CACertCache, expiry: o.CACertCacheExpiry}
	v.crlSrc = source{what: "CRL", location: crl, cache: o.CRLCache, expiry: o.CRLCacheExpiry}

	if v.allowX509 {
		if o.CACertLocation == "" {
			return nil, errors.New("signing: ca_cert_location is required to validate x509 signatures")
		}
		ctx, cancel := context.WithTimeout(context.Background(), o.FetchTimeout)
		v.mu.Lock()
		_ = v.reloadLocked(ctx, true, true) // logged and kept in lastErr
		v.mu.Unlock()
		cancel()
	}
	return v, nil
}

func (v *Validator) now() time.Time {
	if v.opts.Now != nil {
		return v.opts.Now()
	}
	return time.Now()
}

// LoadError returns why the last load of the CA/CRL failed (or why what was
// loaded is unusable, e.g. an expired CRL), nil when the last load was fine.
func (v *Validator) LoadError() error {
	if p := v.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Refresh reloads the CA and CRL now, whatever the rate limit. On failure
// the previous copies stay in use and the error is returned (and logged).
// It also returns an error wrapping ErrCRLExpired when the CRL it obtained
// is already past its nextUpdate.
func (v *Validator) Refresh(ctx context.Context) error {
	if !v.allowX509 {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.reloadLocked(ctx, true, true)
}

// Validate reports whether env is a validly signed envelope that the
// routing policy lets its signer send: nil, or an error wrapping one of the
// package's sentinels. The steps and their order are fedmsg's: backend
// choice (crypto field; else certificate → x509; else signature → gpg; else
// unsigned), allowed backends, credential fields, certificate chain to the
// CA with validity periods, CRL (freshness, revocation), RSA/SHA-1 signature
// over the re-canonicalised envelope without signature/certificate, then the
// routing policy on the certificate's first commonName against env["topic"].
// After a chain or CRL failure the CA and CRL are reloaded once (rate
// limited) and the check repeated, as fedmsg does. Reloads (after a failure,
// or because a copy outlived its expiry) run in the calling goroutine,
// bounded by ctx and FetchTimeout; meanwhile other goroutines keep
// validating with the copy they have.
func (v *Validator) Validate(ctx context.Context, env map[string]any) error {
	return v.validate(ctx, env, v.opts.RoutingPolicy, v.opts.RoutingNitpicky, "")
}

// ValidateSignedBy is fedmsg's validate_signed_by: Validate with
// routing_nitpicky on and the policy {env["topic"]: [signer]}. Unlike
// fedmsg, a gpg-signed message never passes it (gpg validation checks no
// signer identity, so fedmsg would accept any key in the keyring).
func (v *Validator) ValidateSignedBy(ctx context.Context, env map[string]any, signer string) error {
	if env == nil {
		return fmt.Errorf("%w: nil envelope", ErrMalformed)
	}
	topic, ok := env[message.FieldTopic].(string)
	if !ok {
		return fmt.Errorf("%w: validate_signed_by needs a string %q field", ErrMalformed, message.FieldTopic)
	}
	return v.validate(ctx, env, map[string][]string{topic: {signer}}, true, signer)
}

// ValidateBytes decodes an envelope (as json.loads would; invalid JSON or a
// non-object wraps ErrMalformed) and validates it.
func (v *Validator) ValidateBytes(ctx context.Context, body []byte) error {
	env, err := message.DecodeObject(body)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return v.Validate(ctx, env)
}

// Backend returns the backend fedmsg would validate env with ("x509" or
// "gpg"), or an error wrapping ErrUnsigned or ErrUnknownBackend.
func Backend(env map[string]any) (string, error) {
	if c, ok := env[message.FieldCrypto]; ok {
		s, isString := c.(string)
		if !isString {
			return "", fmt.Errorf("%w: crypto field is %s", ErrUnknownBackend, typeName(c))
		}
		if s != BackendX509 && s != BackendGPG {
			return "", fmt.Errorf("%w: %q", ErrUnknownBackend, s)
		}
		return s, nil
	}
	if _, ok := env[message.FieldCertificate]; ok {
		return BackendX509, nil
	}
	if _, ok := env[message.FieldSignature]; ok {
		return BackendGPG, nil
	}
	return "", fmt.Errorf("%w: could not determine crypto backend (no crypto, certificate or signature field)", ErrUnsigned)
}

func (v *Validator) validate(ctx context.Context, env map[string]any, policy map[string][]string, nitpicky bool, signedBy string) error {
	if env == nil {
		return fmt.Errorf("%w: nil envelope", ErrMalformed)
	}
	backend, err := Backend(env)
	if err != nil {
		return err
	}
	switch backend {
	case BackendX509:
		if !v.allowX509 {
			return fmt.Errorf("%w: x509 (crypto_validate_backends is %q)", ErrBackendDisallowed, v.opts.Backends)
		}
		return v.validateX509(ctx, env, policy, nitpicky)
	default:
		if !v.allowGPG {
			return fmt.Errorf("%w: gpg (crypto_validate_backends is %q)", ErrBackendDisallowed, v.opts.Backends)
		}
		if err := v.validateGPG(env); err != nil {
			return err
		}
		if signedBy != "" {
			return fmt.Errorf("%w: a gpg signature carries no signer name to compare with %q", ErrRoutingPolicy, signedBy)
		}
		return nil
	}
}

func (v *Validator) validateGPG(env map[string]any) error {
	if v.opts.GPG == nil {
		return fmt.Errorf("%w: no gpg keyring configured", ErrTrustUnavailable)
	}
	err := v.opts.GPG.Verify(env)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gpg.ErrMalformed):
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	case errors.Is(err, gpg.ErrUnknownKey):
		return fmt.Errorf("%w: %w", ErrUntrusted, err)
	case errors.Is(err, gpg.ErrKeyRevoked):
		return fmt.Errorf("%w: %w", ErrRevoked, err)
	default: // gpg.ErrBadSignature and anything unexpected
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
}

// fieldText returns a credential field as text. Like x509_ng, bytes (only
// possible for envelopes built in Go) are accepted when they are UTF-8.
func fieldText(name string, v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case []byte:
		if !utf8.Valid(x) {
			return "", fmt.Errorf("%w: %s field is not UTF-8", ErrMalformed, name)
		}
		return string(x), nil
	default:
		return "", fmt.Errorf("%w: %s field is %s, not a string", ErrMalformed, name, typeName(v))
	}
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case message.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

func (v *Validator) validateX509(ctx context.Context, env map[string]any, policy map[string][]string, nitpicky bool) error {
	// Step 1: both fields, as text.
	sigField, ok := env[message.FieldSignature]
	if !ok {
		return fmt.Errorf("%w: no signature field", ErrMalformed)
	}
	certField, ok := env[message.FieldCertificate]
	if !ok {
		return fmt.Errorf("%w: no certificate field", ErrMalformed)
	}
	sigText, err := fieldText(message.FieldSignature, sigField)
	if err != nil {
		return err
	}
	certText, err := fieldText(message.FieldCertificate, certField)
	if err != nil {
		return err
	}

	// Step 2: lenient base64, signature first.
	var sigBuf [512]byte
	sig, err := decodeBase64(sigBuf[:0], sigText)
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	ent := v.certs.get(certText)
	if ent.b64Err != nil {
		return ent.b64Err
	}

	// Steps 4-6: the certificate against the CA and CRL, with one bounded
	// reload and retry after a trust failure.
	st := v.currentState(ctx)
	now := v.now()
	err = v.checkTrust(st, ent, now)
	if err != nil && isTrustFailure(err) {
		if st2 := v.retryState(ctx, st); st2 != st {
			err = v.checkTrust(st2, ent, v.now())
		}
	}
	if err != nil {
		return err
	}

	// Step 7: the signature over the re-canonicalised envelope.
	if ent.pub == nil {
		return ent.keyErr
	}
	digest, err := signingDigest(env)
	if err != nil {
		return fmt.Errorf("%w: envelope has no canonical JSON form: %w", ErrMalformed, err)
	}
	if err := rsa.VerifyPKCS1v15(ent.pub, crypto.SHA1, digest[:], sig); err != nil {
		return fmt.Errorf("%w: RSA/SHA-1 verification with the key of %q failed: %w", ErrBadSignature, ent.cn, err)
	}

	// Step 8: routing policy.
	if !ent.hasCN {
		return fmt.Errorf("%w: certificate subject %q has no commonName", ErrMalformed, ent.cert.Subject.String())
	}
	topic, hasTopic := env[message.FieldTopic].(string)
	if allowed, listed := policy[topic]; hasTopic && listed {
		if slices.Contains(allowed, ent.cn) {
			return nil
		}
		//lint:ignore ST1005 fedmsg's routing-policy message, word for word
		return fmt.Errorf("%w: Authorization/routing_policy error. Topic %q. Signer %q.", ErrRoutingPolicy, topic, ent.cn)
	}
	if nitpicky {
		return fmt.Errorf("%w: Authorization/routing_policy underspecified: no entry for topic %q (signer %q) and routing_nitpicky is on", ErrRoutingPolicy, topic, ent.cn)
	}
	return nil
}

// checkTrust runs the chain and CRL checks of st on the certificate, in the
// order OpenSSL reports them: issuer, CRL (validity, then revocation of the
// certificate and the CA), CA validity, the CA's signature, the
// certificate's validity.
func (v *Validator) checkTrust(st *trustState, ent *certEntry, now time.Time) error {
	if st == nil {
		cause := v.LoadError()
		if cause == nil {
			cause = errors.New("not loaded yet")
		}
		if errors.Is(cause, ErrTrustUnavailable) {
			return cause
		}
		return fmt.Errorf("%w: %w", ErrTrustUnavailable, cause)
	}
	if ent.parseErr != nil {
		// fedmsg parses the certificate after loading the CA.
		return ent.parseErr
	}
	vd := ent.verdictFor(st)
	if vd.issuer != nil {
		return vd.issuer
	}
	if st.hasCRL {
		if st.crlErr != nil {
			return st.crlErr
		}
		if err := crlTimeError(st.crl, now); err != nil {
			return fmt.Errorf("%w (CRL from %s; reloaded at most every %s, with backoff after failures)", err, st.crlFrom, v.opts.MinRefreshInterval)
		}
		if vd.revoked != nil {
			return vd.revoked
		}
	}
	if err := validityError(st.ca, now, "CA certificate"); err != nil {
		return err
	}
	if vd.sig != nil {
		return vd.sig
	}
	return validityError(ent.cert, now, "certificate")
}
