package signing

import "errors"

// Sentinel errors. Every rejection wraps exactly one of them (the gpg
// mapping wraps the gpg package's error as well); test with errors.Is.
var (
	// ErrUnsigned: the envelope has none of crypto, signature and
	// certificate (fedmsg: "Could not determine crypto backend. Message
	// unsigned?").
	ErrUnsigned = errors.New("signing: message unsigned")
	// ErrUnknownBackend: the crypto field is neither "x509" nor "gpg"
	// (fedmsg: "impossible crypto backend").
	ErrUnknownBackend = errors.New("signing: impossible crypto backend")
	// ErrBackendDisallowed: the backend is not in crypto_validate_backends.
	ErrBackendDisallowed = errors.New("signing: crypto backend disallowed")
	// ErrMalformed: a credential field is missing or of the wrong type, its
	// base64 is badly padded or not ASCII, the certificate is not a PEM
	// certificate, not RSA, or has no commonName; also undecodable JSON.
	ErrMalformed = errors.New("signing: malformed message credentials")
	// ErrBadSignature: the RSA/SHA-1 (or gpg) signature does not verify.
	ErrBadSignature = errors.New("signing: invalid signature")
	// ErrUntrusted: the certificate does not chain to the CA ("unable to
	// get local issuer certificate"), its issuer signature is wrong, or the
	// CA is not usable as a CA; for gpg, the key is not in the keyring.
	ErrUntrusted = errors.New("signing: certificate not trusted")
	// ErrCertNotValid: the certificate or the CA is outside its validity
	// period.
	ErrCertNotValid = errors.New("signing: certificate outside its validity period")
	// ErrRevoked: the certificate's serial is listed in the CRL.
	ErrRevoked = errors.New("signing: certificate revoked")
	// ErrCRLExpired: the CRL is past its nextUpdate.
	ErrCRLExpired = errors.New("signing: CRL has expired")
	// ErrCRLInvalid: the CRL cannot be parsed, was not issued or signed by
	// the CA, or is not yet valid.
	ErrCRLInvalid = errors.New("signing: invalid CRL")
	// ErrRoutingPolicy: routing_policy, routing_nitpicky or
	// validate_signed_by refused the signer.
	ErrRoutingPolicy = errors.New("signing: routing policy refused the signer")
	// ErrTrustUnavailable: the CA or CRL could not be loaded at all and no
	// earlier copy exists (or, for gpg, no keyring is configured).
	ErrTrustUnavailable = errors.New("signing: trust material unavailable")
	// ErrNoCertificate: signing is impossible: no certnames entry for the
	// index, or the certificate/key files are missing or unusable.
	ErrNoCertificate = errors.New("signing: no certificate")
)
