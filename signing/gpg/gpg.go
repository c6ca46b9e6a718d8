package gpg

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/gofedmsg/fedmsg/message"
)

// Verification errors. Verify wraps exactly one of them, with the reason.
var (
	// ErrBadSignature: the signature does not verify over canonical(msg),
	// or gpg would reject it for its dates (expired signature, signature
	// older than the key, key created in the future) or for an unknown
	// critical notation.
	ErrBadSignature = errors.New("gpg: bad signature")
	// ErrUnknownKey: no key of the keyring can have made the signature.
	ErrUnknownKey = errors.New("gpg: signing key not in the keyring")
	// ErrMalformed: no msg field, a signature that is not a string, bad
	// base64, not (only) OpenPGP signature packets, not a signature over a
	// document, a msg with no canonical JSON form...
	ErrMalformed = errors.New("gpg: malformed signature")
	// ErrNoKey: NewSigner found no secret key matching what it was asked for.
	ErrNoKey = errors.New("gpg: no signing key")
	// ErrKeyRevoked: the signature verifies but its key (or signing subkey)
	// has been revoked. GnuPG 2.2 accepts such signatures with a warning;
	// this package does not.
	ErrKeyRevoked = errors.New("gpg: signing key revoked")
)

// CryptoName is the value of the envelope's "crypto" field for this backend.
const CryptoName = "gpg"

// maxSignatures bounds the signature packets checked for one message (fedmsg
// makes exactly one; gpg requires every one present to be good).
const maxSignatures = 16

// Keyring holds the public keys that validation accepts. Any key present is
// trusted, like fedmsg's `gpg --verify` with the receiver's gpg_home. A
// Keyring is safe for concurrent use.
type Keyring struct {
	entities openpgp.EntityList
	now      func() time.Time // for tests; time.Now when nil
}

// LoadKeyring reads public keys from files: ASCII-armored (one or more key
// blocks, public or private — only the public halves are used) or binary
// OpenPGP data (`gpg --export` output or a legacy GnuPG pubring.gpg, whose
// trust packets are skipped), detected from the content.
//
// A directory argument means: its pubring.gpg if present plus every other
// *.asc and *.gpg file in it (trustdb.gpg and secring.gpg excepted), so a
// legacy gpg_home can be passed directly. GnuPG 2.1+ keeps keys in
// pubring.kbx, which is not readable here: a directory with only that, or
// with it beside a (then stale) pubring.gpg, is an error that says to export
// the keys (`gpg --export > keys.gpg`).
//
// Errors name the file. At least one path and at least one key are required.
func LoadKeyring(paths ...string) (*Keyring, error) {
	if len(paths) == 0 {
		return nil, errors.New("gpg: LoadKeyring: no keyring file or directory given")
	}
	k := &Keyring{}
	for _, p := range paths {
		el, err := readKeyPath(p)
		if err != nil {
			return nil, err
		}
		k.entities = append(k.entities, el...)
	}
	return k, nil
}

// Len returns the number of distinct keys (primary keys, by fingerprint) in
// the keyring.
func (k *Keyring) Len() int {
	if k == nil {
		return 0
	}
	return len(k.Fingerprints())
}

// Fingerprints returns the distinct primary-key fingerprints of the keyring
// (upper-case hex), in load order.
func (k *Keyring) Fingerprints() []string {
	if k == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, e := range k.entities {
		fp := fingerprintHex(e.PrimaryKey.Fingerprint)
		if !seen[fp] {
			seen[fp] = true
			out = append(out, fp)
		}
	}
	return out
}

func (k *Keyring) clock() time.Time {
	if k.now != nil {
		return k.now()
	}
	return time.Now()
}

// Verify checks env["signature"] as a detached OpenPGP signature over
// message.Canonical(env["msg"]) encoded as UTF-8, like fedmsg.crypto.gpg's
// validate. Only msg is covered: changing topic or any other field does not
// invalidate the signature.
//
// The signature is a string (a []byte is taken too) of base64, standard
// alphabet, decoded as leniently as Python's base64.b64decode: white space,
// line breaks and other characters outside the alphabet are ignored. The
// decoded bytes are binary OpenPGP signature packets or, as gpg also accepts,
// an ASCII-armored signature.
//
// It returns nil when the signature is good, else an error wrapping one of
// ErrMalformed, ErrUnknownKey, ErrBadSignature or ErrKeyRevoked. It never
// panics.
func (k *Keyring) Verify(env map[string]any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: OpenPGP parser failed: %v", ErrMalformed, r)
		}
	}()
	return k.verify(env)
}

// verify is Verify without the panic guard (the fuzz test calls it so that a
// panic is seen, not hidden).
func (k *Keyring) verify(env map[string]any) error {
	if k == nil {
		return fmt.Errorf("%w: empty keyring", ErrUnknownKey)
	}
	if env == nil {
		return fmt.Errorf("%w: no envelope", ErrMalformed)
	}
	msg, ok := env[message.FieldMsg]
	if !ok {
		return fmt.Errorf("%w: the envelope has no %q field", ErrMalformed, message.FieldMsg)
	}
	sigField, ok := env[message.FieldSignature]
	if !ok {
		return fmt.Errorf("%w: the envelope has no %q field", ErrMalformed, message.FieldSignature)
	}
	var sigText string
	switch v := sigField.(type) {
	case string:
		sigText = v
	case []byte:
		sigText = string(v)
	default:
		return fmt.Errorf("%w: %q is %T, not a string", ErrMalformed, message.FieldSignature, sigField)
	}
	raw, err := decodeBase64(sigText)
	if err != nil {
		return fmt.Errorf("%w: %q is not base64: %v", ErrMalformed, message.FieldSignature, err)
	}
	data, err := message.Canonical(msg)
	if err != nil {
		return fmt.Errorf("%w: %q has no canonical JSON form: %v", ErrMalformed, message.FieldMsg, err)
	}
	return k.verifyDetached(data, raw)
}

// VerifyDetached checks sig (binary OpenPGP signature packets, or an
// ASCII-armored signature) as a detached signature over data, like
// `gpg --verify sig data`. Errors are those of Verify.
func (k *Keyring) VerifyDetached(data, sig []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: OpenPGP parser failed: %v", ErrMalformed, r)
		}
	}()
	if k == nil {
		return fmt.Errorf("%w: empty keyring", ErrUnknownKey)
	}
	return k.verifyDetached(data, sig)
}

func (k *Keyring) verifyDetached(data, raw []byte) error {
	sigs, err := parseSignatures(raw)
	if err != nil {
		return err
	}
	now := k.clock()
	for _, sig := range sigs {
		if err := k.checkOne(sig, data, now); err != nil {
			return err
		}
	}
	return nil
}

// parseSignatures returns the signature packets of a detached signature:
// binary packets, or one ASCII-armored "PGP SIGNATURE" block. Marker and
// padding packets are skipped as OpenPGP requires; any other packet, or
// none at all, is ErrMalformed.
func parseSignatures(raw []byte) ([]*packet.Signature, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: empty signature", ErrMalformed)
	}
	if isArmored(raw) {
		b, err := armor.Decode(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%w: bad ASCII armor: %v", ErrMalformed, err)
		}
		if b.Type != openpgp.SignatureType {
			return nil, fmt.Errorf("%w: armored %q, not a %q", ErrMalformed, b.Type, openpgp.SignatureType)
		}
		body, err := io.ReadAll(io.LimitReader(b.Body, int64(len(raw))))
		if err != nil {
			return nil, fmt.Errorf("%w: bad ASCII armor: %v", ErrMalformed, err)
		}
		raw = body
		if len(raw) == 0 {
			return nil, fmt.Errorf("%w: empty armored signature", ErrMalformed)
		}
	}
	r := bytes.NewReader(raw)
	var sigs []*packet.Signature
	for {
		p, err := packet.Read(r)
		if err == io.EOF && r.Len() == 0 {
			break
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("%w: not an OpenPGP signature: %v", ErrMalformed, err)
		}
		switch p := p.(type) {
		case *packet.Signature:
			if len(sigs) == maxSignatures {
				return nil, fmt.Errorf("%w: more than %d signatures", ErrMalformed, maxSignatures)
			}
			sigs = append(sigs, p)
		case *packet.Marker, packet.Padding:
		default:
			return nil, fmt.Errorf("%w: %T packet in a detached signature", ErrMalformed, p)
		}
	}
	if len(sigs) == 0 {
		return nil, fmt.Errorf("%w: no signature packet", ErrMalformed)
	}
	return sigs, nil
}

// checkOne verifies one signature packet over data with the keyring.
func (k *Keyring) checkOne(sig *packet.Signature, data []byte, now time.Time) error {
	if sig.SigType != packet.SigTypeBinary && sig.SigType != packet.SigTypeText {
		return fmt.Errorf("%w: signature class 0x%02x is not a document signature", ErrMalformed, uint8(sig.SigType))
	}
	keys, who := k.candidates(sig)
	if len(keys) == 0 {
		return fmt.Errorf("%w: no usable public key %s", ErrUnknownKey, who)
	}
	var (
		key     openpgp.Key
		lastErr error
		good    bool
	)
	for _, cand := range keys {
		// The hash is consumed by each attempt (the signature's trailer is
		// written into it), so compute it afresh for every candidate.
		h, err := sig.PrepareVerify()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		w := h
		if sig.SigType == packet.SigTypeText {
			w = openpgp.NewCanonicalTextHash(h)
		}
		w.Write(data)
		if lastErr = cand.PublicKey.VerifySignature(h, sig); lastErr == nil {
			key, good = cand, true
			break
		}
	}
	if !good {
		return fmt.Errorf("%w: %v (key %s)", ErrBadSignature, lastErr, who)
	}
	return k.checkDates(sig, key, now)
}

// candidates returns the keys of the keyring that may have made sig: those
// with its issuer key id (and issuer fingerprint when the signature has one)
// that are allowed to sign. who describes the issuer for error messages.
func (k *Keyring) candidates(sig *packet.Signature) (keys []openpgp.Key, who string) {
	var id uint64
	switch {
	case sig.IssuerKeyId != nil:
		id = *sig.IssuerKeyId
		who = fmt.Sprintf("%016X", id)
	case len(sig.IssuerFingerprint) >= 8:
		fp := sig.IssuerFingerprint
		if sig.IssuerKeyVersion >= 5 {
			id = beUint64(fp[:8])
		} else {
			id = beUint64(fp[len(fp)-8:])
		}
	default:
		return nil, "(the signature names no issuer)"
	}
	if len(sig.IssuerFingerprint) > 0 {
		who = fingerprintHex(sig.IssuerFingerprint)
	}
	for _, key := range k.entities.KeysById(id) {
		if len(sig.IssuerFingerprint) > 0 && !bytes.Equal(sig.IssuerFingerprint, key.PublicKey.Fingerprint) {
			continue
		}
		if !canSign(key) {
			continue
		}
		keys = append(keys, key)
	}
	return keys, who
}

// canSign reports whether key may make data signatures: its algorithm can
// sign and its self-signature grants the signing flag (or, when it carries no
// key flags at all, a primary key is assumed to, as GnuPG does).
func canSign(key openpgp.Key) bool {
	if key.PublicKey == nil || !key.PublicKey.CanSign() {
		return false
	}
	ss := key.SelfSignature
	if ss == nil {
		return false
	}
	if !ss.FlagsValid {
		return key.PublicKey == key.Entity.PrimaryKey
	}
	return ss.FlagSign
}

// checkDates applies GnuPG's non-cryptographic checks to a signature that
// verified with key (see the package documentation for the verdicts).
func (k *Keyring) checkDates(sig *packet.Signature, key openpgp.Key, now time.Time) error {
	for _, n := range sig.Notations {
		if n.IsCritical {
			return fmt.Errorf("%w: unknown critical notation %q", ErrBadSignature, n.Name)
		}
	}
	created := key.PublicKey.CreationTime
	if created.After(sig.CreationTime) {
		return fmt.Errorf("%w: key %s was created %s after the signature (time conflict)",
			ErrBadSignature, key.PublicKey.KeyIdString(), created.Sub(sig.CreationTime))
	}
	if created.After(now) {
		return fmt.Errorf("%w: key %s was created in the future (%s)",
			ErrBadSignature, key.PublicKey.KeyIdString(), created.UTC().Format(time.RFC3339))
	}
	// Not go-crypto's SigExpired: it also calls a signature from the future
	// expired, which gpg accepts (clocks differ between hosts).
	if life := sig.SigLifetimeSecs; life != nil && *life != 0 {
		expiry := sig.CreationTime.Unix() + int64(*life)
		if now.Unix() >= expiry { // gpg: expired once expiredate <= now
			return fmt.Errorf("%w: the signature expired at %s", ErrBadSignature,
				time.Unix(expiry, 0).UTC().Format(time.RFC3339))
		}
	}
	if k.revoked(key, now) {
		return fmt.Errorf("%w: key %s", ErrKeyRevoked, key.PublicKey.KeyIdString())
	}
	return nil
}

// revoked reports whether the signing key, its primary key, or the same key
// loaded from another file, carries a valid revocation.
func (k *Keyring) revoked(key openpgp.Key, now time.Time) bool {
	if key.Revoked(now) || key.Entity.Revoked(now) {
		return true
	}
	primary := key.Entity.PrimaryKey.Fingerprint
	for _, e := range k.entities {
		if e == key.Entity || !bytes.Equal(e.PrimaryKey.Fingerprint, primary) {
			continue
		}
		if e.Revoked(now) {
			return true
		}
		for _, sk := range e.Subkeys {
			if bytes.Equal(sk.PublicKey.Fingerprint, key.PublicKey.Fingerprint) && sk.Revoked(now) {
				return true
			}
		}
	}
	return false
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, c := range b[:8] {
		v = v<<8 | uint64(c)
	}
	return v
}

func fingerprintHex(fp []byte) string {
	return strings.ToUpper(hex.EncodeToString(fp))
}
