// Package signing signs and validates fedmsg envelopes the way Python
// fedmsg's fedmsg.crypto does (spec §4, §5), byte for byte.
//
// x509 signing (X509Signer) sets crypto="x509", signs the canonical JSON
// (message.Canonical) of the envelope without signature/certificate with
// RSASSA-PKCS1-v1_5 and SHA-1, and stores the signature and the PEM of the
// signer's certificate base64-encoded and wrapped at 76 columns, exactly as
// fedmsg's x509 backends do. RSA PKCS#1 v1.5 is deterministic, so the output
// equals Python's to the byte.
//
// Validation (Validator) follows fedmsg.crypto.validate and the x509_ng
// backend step by step: choose the backend from the crypto field (else
// certificate → x509, else signature → gpg, else unsigned), check it is
// allowed, decode the credentials with Python's lenient base64, verify the
// certificate against the CA (one trust anchor, no intermediates) and, when
// a CRL is configured, the CRL (signature, freshness, revocation), verify
// the RSA/SHA-1 signature over the re-canonicalised envelope, and finally
// apply the routing policy to the certificate's first commonName.
//
// Every reason for rejection is a sentinel error (ErrUntrusted, ErrRevoked,
// ...) wrapped with the details; check them with errors.Is. Input from the
// network never makes the package panic.
//
// Trust material (CA and CRL) is loaded from files or http(s) URLs, kept in
// memory, optionally mirrored to cache files, refreshed after its expiry and,
// as fedmsg does, reloaded once when a certificate fails verification, but
// rate-limited and with exponential backoff after failed reloads, so that a
// broken CRL server or a flood of rogue messages never turns into a download
// per message. A failed reload keeps the previous copy.
//
// Per-certificate work (base64 and PEM decoding, parsing, chain and CRL
// verdicts) is cached, keyed by the certificate field and invalidated when
// the CA or CRL changes, so validating a message from a known signer costs
// one base64 decode of the signature, one canonicalisation, one SHA-1 and
// one RSA verification.
package signing
