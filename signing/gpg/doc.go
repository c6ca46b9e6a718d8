// Package gpg is fedmsg's GnuPG signing backend (fedmsg.crypto.gpg),
// re-implemented on an OpenPGP library instead of the gpg binary.
//
// What fedmsg does, and therefore what this package does:
//
//   - Only the body is signed: the signed bytes are the canonical JSON
//     (message.Canonical, i.e. fedmsg.encoding.dumps) of envelope["msg"],
//     UTF-8. topic, msg_id, timestamp, username and i are not covered, so
//     changing them does not invalidate a gpg-signed message.
//   - The signature is a detached, binary (not armored) OpenPGP v4 signature
//     of class 0x00, stored base64-encoded without line wrapping in the
//     envelope's "signature" field; crypto is "gpg" and there is no
//     "certificate" field.
//   - Validation is `gpg --homedir gpg_home --verify sig data`: any key in the
//     keyring is accepted (trust levels are ignored) and there is no routing
//     policy.
//
// Verdicts follow what gpg --verify (GnuPG 2.2) exits 0 for, with one
// deliberate hardening. Accepted like gpg: a signature by a key that has
// expired since, a signature dated in the future, an ASCII-armored signature
// (gpg detects armor by itself), a text-mode (class 0x01) signature.
// Rejected like gpg: an expired signature, a signature older than its key,
// a key created in the future. Stricter than gpg: a signature by a revoked
// key (gpg still exits 0, with a warning) fails with ErrKeyRevoked.
//
// Keyrings are read from files (armored or binary, e.g. the output of
// `gpg --export`) or from a GnuPG home directory that holds a legacy
// pubring.gpg. GnuPG 2.1+ keeps keys in pubring.kbx (keybox), which is not an
// OpenPGP format: export the keys from it first.
package gpg
