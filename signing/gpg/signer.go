package gpg

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/gofedmsg/fedmsg/message"
)

// SignatureHash is the digest Signer uses: SHA-512, what GnuPG 2.2 chose for
// the RSA keys of the fedmsg vectors.
const SignatureHash = crypto.SHA512

// Signer signs envelopes like fedmsg's gpg backend (see Sign). A Signer is
// safe for concurrent use.
type Signer struct {
	entity      *openpgp.Entity
	signingKey  openpgp.Key // primary key or signing subkey actually used
	fingerprint string      // of the primary key
	now         func() time.Time
}

// NewSigner loads secret keys from files (ASCII-armored or binary, e.g.
// `gpg --export-secret-keys KEY > key.gpg`; the key must not be
// passphrase-protected: an encrypted key is an error that says so) and picks
// the one keyID designates, as gpg's --local-user would:
//
//   - a fingerprint (hex, any case, spaces and a leading 0x ignored) or a long
//     (16 hex digits) or short (8) key id, of a primary key or a subkey; a
//     trailing "!" forces exactly that (sub)key, otherwise the key's newest
//     valid signing subkey is used, or its primary key if it has none;
//   - otherwise a user ID: "<addr>" matches the e-mail address exactly,
//     "=uid" the whole user ID, and anything else is a case-insensitive
//     substring of a user ID;
//   - an empty keyID picks the only secret key loaded.
//
// No match (or a key that has no usable secret signing key) is ErrNoKey,
// naming what was looked for; more than one distinct match is an error too.
func NewSigner(keyID string, paths ...string) (*Signer, error) {
	if len(paths) == 0 {
		return nil, errors.New("gpg: NewSigner: no secret key file given")
	}
	var secret openpgp.EntityList
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return nil, fmt.Errorf("gpg: %s is a directory: GnuPG 2.1+ keeps secret keys in its agent, "+
				"export one with `gpg --homedir %s --export-secret-keys KEY > key.gpg` and load that file", p, p)
		}
		el, err := readKeyFile(p)
		if err != nil {
			return nil, err
		}
		for _, e := range el {
			if hasSecret(e) {
				secret = append(secret, e)
			}
		}
	}
	where := strings.Join(paths, ", ")
	if len(secret) == 0 {
		return nil, fmt.Errorf("%w: no secret key in %s", ErrNoKey, where)
	}
	matches, forced, err := selectKey(secret, keyID)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, where)
	}
	e := matches[0]
	s := &Signer{entity: e, fingerprint: fingerprintHex(e.PrimaryKey.Fingerprint)}
	key, err := pickSigningKey(e, forced, s.clock())
	if err != nil {
		return nil, fmt.Errorf("%w (key %s, asked for %q, in %s)", err, s.fingerprint, keyID, where)
	}
	s.signingKey = key
	return s, nil
}

// pickSigningKey chooses the key of e that signs, like gpg --local-user: the
// forced (sub)key if forced != 0, else the newest valid signing subkey whose
// secret is available, else the primary key.
func pickSigningKey(e *openpgp.Entity, forced uint64, now time.Time) (openpgp.Key, error) {
	ids := []uint64{forced}
	if forced == 0 {
		// SigningKeyById(0) prefers the newest signing subkey, whether or not
		// its secret is here: try the others explicitly after it.
		for i := len(e.Subkeys) - 1; i >= 0; i-- {
			ids = append(ids, e.Subkeys[i].PublicKey.KeyId)
		}
		ids = append(ids, e.PrimaryKey.KeyId)
	}
	var encrypted, stub *openpgp.Key
	for _, id := range ids {
		key, ok := e.SigningKeyById(now, id)
		if !ok {
			continue
		}
		switch {
		case key.PrivateKey == nil || key.PrivateKey.Dummy():
			if stub == nil {
				stub = &key
			}
		case key.PrivateKey.Encrypted:
			if encrypted == nil {
				encrypted = &key
			}
		default:
			return key, nil
		}
	}
	switch {
	case encrypted != nil:
		return openpgp.Key{}, fmt.Errorf("gpg: secret key %s is passphrase-protected (encrypted), which is not "+
			"supported: export it without a passphrase", encrypted.PublicKey.KeyIdString())
	case stub != nil:
		return openpgp.Key{}, fmt.Errorf("%w: the secret part of signing key %s is not in the file",
			ErrNoKey, stub.PublicKey.KeyIdString())
	}
	return openpgp.Key{}, fmt.Errorf("%w: no valid signing key (expired, revoked or not signing-capable)", ErrNoKey)
}

func hasSecret(e *openpgp.Entity) bool {
	if e.PrivateKey != nil {
		return true
	}
	for _, sk := range e.Subkeys {
		if sk.PrivateKey != nil {
			return true
		}
	}
	return false
}

// selectKey returns the entities keyID designates (deduplicated by primary
// fingerprint, exactly one) and, when a specific (sub)key was forced with
// "!", its key id.
func selectKey(el openpgp.EntityList, keyID string) (openpgp.EntityList, uint64, error) {
	spec := strings.TrimSpace(keyID)
	var (
		match  func(e *openpgp.Entity) (bool, uint64)
		forced bool
	)
	if spec == "" {
		match = func(*openpgp.Entity) (bool, uint64) { return true, 0 }
	} else if hexID, ok := hexKeySpec(spec); ok {
		if strings.HasSuffix(hexID, "!") {
			forced = true
			hexID = strings.TrimSuffix(hexID, "!")
		}
		match = func(e *openpgp.Entity) (bool, uint64) {
			if keyMatches(e.PrimaryKey, hexID) {
				return true, e.PrimaryKey.KeyId
			}
			for _, sk := range e.Subkeys {
				if keyMatches(sk.PublicKey, hexID) {
					return true, sk.PublicKey.KeyId
				}
			}
			return false, 0
		}
	} else {
		match = func(e *openpgp.Entity) (bool, uint64) { return uidMatches(e, spec), 0 }
	}

	var (
		out  openpgp.EntityList
		fps  []string
		keys []uint64
	)
	seen := map[string]bool{}
	for _, e := range el {
		ok, id := match(e)
		if !ok {
			continue
		}
		fp := fingerprintHex(e.PrimaryKey.Fingerprint)
		if seen[fp] {
			continue
		}
		seen[fp] = true
		out, fps, keys = append(out, e), append(fps, fp), append(keys, id)
	}
	switch {
	case len(out) == 0 && spec == "":
		return nil, 0, fmt.Errorf("%w: no secret key", ErrNoKey)
	case len(out) == 0:
		return nil, 0, fmt.Errorf("%w: no secret key matches %q", ErrNoKey, keyID)
	case len(out) > 1 && spec == "":
		return nil, 0, fmt.Errorf("%w: no key id given and %d secret keys loaded (%s): say which",
			ErrNoKey, len(out), strings.Join(fps, ", "))
	case len(out) > 1:
		return nil, 0, fmt.Errorf("gpg: %q is ambiguous, it matches %d secret keys (%s)",
			keyID, len(out), strings.Join(fps, ", "))
	}
	if !forced {
		keys[0] = 0
	}
	return out, keys[0], nil
}

// hexKeySpec normalises a fingerprint or key id: spaces removed, 0x prefix
// dropped, upper case, "!" kept at the end. ok is false if spec is not one.
func hexKeySpec(spec string) (string, bool) {
	s := strings.ToUpper(strings.Join(strings.Fields(spec), ""))
	s = strings.TrimPrefix(s, "0X")
	bang := strings.HasSuffix(s, "!")
	s = strings.TrimSuffix(s, "!")
	switch len(s) {
	case 8, 16, 40, 64:
	default:
		return "", false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return "", false
		}
	}
	if bang {
		s += "!"
	}
	return s, true
}

// keyMatches compares a normalised hex spec with a key's fingerprint, long
// key id or short key id.
func keyMatches(pk *packet.PublicKey, hexID string) bool {
	switch len(hexID) {
	case 8:
		return pk.KeyIdShortString() == hexID
	case 16:
		return pk.KeyIdString() == hexID
	default:
		return fingerprintHex(pk.Fingerprint) == hexID
	}
}

// uidMatches applies gpg's user ID matching rules (the common ones).
func uidMatches(e *openpgp.Entity, spec string) bool {
	for name := range e.Identities {
		switch {
		case strings.HasPrefix(spec, "="):
			if name == spec[1:] {
				return true
			}
		case strings.HasPrefix(spec, "<") && strings.HasSuffix(spec, ">"):
			if strings.Contains(strings.ToLower(name), strings.ToLower(spec)) {
				return true
			}
		default:
			if strings.Contains(strings.ToLower(name), strings.ToLower(spec)) {
				return true
			}
		}
	}
	return false
}

func (s *Signer) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// Fingerprint returns the primary-key fingerprint of the signing key
// (upper-case hex, as gpg prints it).
func (s *Signer) Fingerprint() string { return s.fingerprint }

// SigningKeyID returns the long key id (upper-case hex) of the key that
// actually makes the signatures: the primary key or a signing subkey. It is
// the issuer a verifier sees.
func (s *Signer) SigningKeyID() string { return s.signingKey.PublicKey.KeyIdString() }

// Sign signs env like fedmsg's gpg backend: it returns a shallow copy of env
// (the caller's map is not modified) with crypto set to "gpg" and signature
// set to the base64 (standard alphabet, padded, no line wrapping) of a binary
// detached OpenPGP v4 signature, class 0x00, SHA-512, over
// message.Canonical(env["msg"]). No certificate field is added. Fields other
// than msg are not covered by the signature.
func (s *Signer) Sign(env map[string]any) (map[string]any, error) {
	if s == nil || s.entity == nil {
		return nil, fmt.Errorf("%w: nil Signer", ErrNoKey)
	}
	msg, ok := env[message.FieldMsg]
	if !ok {
		return nil, fmt.Errorf("gpg: cannot sign: the envelope has no %q field", message.FieldMsg)
	}
	data, err := message.Canonical(msg)
	if err != nil {
		return nil, fmt.Errorf("gpg: cannot sign: %w", err)
	}
	sig, err := s.SignDetached(data)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(env)+2)
	for k, v := range env {
		out[k] = v
	}
	out[message.FieldCrypto] = CryptoName
	out[message.FieldSignature] = base64.StdEncoding.EncodeToString(sig)
	return out, nil
}

// SignDetached returns a binary detached signature over data, as
// `gpg --detach-sign` makes it: one v4 signature packet, class 0x00
// (binary document), SHA-512, with the hashed subpackets signature creation
// time and issuer fingerprint and the issuer key id.
func (s *Signer) SignDetached(data []byte) ([]byte, error) {
	if s == nil || s.entity == nil {
		return nil, fmt.Errorf("%w: nil Signer", ErrNoKey)
	}
	no := false
	cfg := &packet.Config{
		DefaultHash:  SignatureHash,
		Time:         s.clock,
		SigningKeyId: s.signingKey.PublicKey.KeyId,
		// Like gpg: no salt notation (RSA PKCS#1 v1.5 signatures are
		// deterministic anyway).
		NonDeterministicSignaturesViaNotation: &no,
	}
	var buf bytes.Buffer
	if err := openpgp.DetachSign(&buf, s.entity, bytes.NewReader(data), cfg); err != nil {
		return nil, fmt.Errorf("gpg: signing with %s: %w", s.fingerprint, err)
	}
	return buf.Bytes(), nil
}
