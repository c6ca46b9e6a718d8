package gpg

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/message"
)

// These tests pin the non-cryptographic verdicts to what GnuPG 2.2.40's
// `gpg --verify` exit status was for the same situation (checked by hand with
// --faked-system-time): expired key 0, signature in the future 0, armored
// signature 0, expired signature 1, key newer than the signature 2, key
// created in the future 2, revoked key 0 (this package: ErrKeyRevoked).

func secretA(t testing.TB) *openpgp.Entity {
	t.Helper()
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(sharedtest.Read(t, vecDir, "key-a.sec.asc")))
	if err != nil {
		t.Fatal(err)
	}
	return el[0]
}

// signMsg signs canonical(env["msg"]) of vector g01 with e under cfg and
// returns g01 carrying that signature.
func signMsg(t testing.TB, e *openpgp.Entity, cfg *packet.Config, text bool) map[string]any {
	t.Helper()
	env := readEnvelope(t, "signed/g01-dict.json")
	data := mustCanonical(t, env[message.FieldMsg])
	var buf bytes.Buffer
	sign := openpgp.DetachSign
	if text {
		sign = openpgp.DetachSignText
	}
	if err := sign(&buf, e, bytes.NewReader(data), cfg); err != nil {
		t.Fatal(err)
	}
	env[message.FieldSignature] = b64(buf.Bytes())
	return env
}

// rawSign makes a v4 binary signature of g01's msg by e's primary key dated
// made, with a lifetime (0: none), bypassing go-crypto's key validity checks
// so that signatures gpg would judge by their dates can be built.
func rawSign(t testing.TB, e *openpgp.Entity, made time.Time, lifetime uint32) map[string]any {
	t.Helper()
	env := readEnvelope(t, "signed/g01-dict.json")
	data := mustCanonical(t, env[message.FieldMsg])
	pk := e.PrimaryKey
	sig := &packet.Signature{
		Version:           4,
		SigType:           packet.SigTypeBinary,
		PubKeyAlgo:        pk.PubKeyAlgo,
		Hash:              SignatureHash,
		CreationTime:      made.Truncate(time.Second),
		IssuerKeyId:       &pk.KeyId,
		IssuerFingerprint: pk.Fingerprint,
		SigLifetimeSecs:   &lifetime,
	}
	cfg := &packet.Config{NonDeterministicSignaturesViaNotation: new(bool)}
	h, err := sig.PrepareSign(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.Write(data)
	if err := sig.Sign(h, e.PrivateKey, cfg); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := sig.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	env[message.FieldSignature] = b64(buf.Bytes())
	return env
}

func at(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestVerifyDates(t *testing.T) {
	a := secretA(t)
	created := a.PrimaryKey.CreationTime
	kr := keyringA(t)

	t.Run("signature from the future is accepted", func(t *testing.T) {
		env := signMsg(t, a, &packet.Config{Time: at(time.Now().Add(2 * time.Hour))}, false)
		if err := kr.Verify(env); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("signature older than the key", func(t *testing.T) {
		env := rawSign(t, a, created.Add(-24*time.Hour), 0)
		if err := kr.Verify(env); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("err = %v, want ErrBadSignature (time conflict)", err)
		}
	})
	t.Run("key created in the future", func(t *testing.T) {
		past := &Keyring{entities: kr.entities, now: at(created.Add(-time.Hour))}
		if err := past.Verify(readEnvelope(t, "signed/g01-dict.json")); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("err = %v, want ErrBadSignature", err)
		}
	})
	t.Run("expired signature", func(t *testing.T) {
		made := created.Add(time.Minute)
		env := rawSign(t, a, made, 60)
		if err := kr.Verify(env); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("err = %v, want ErrBadSignature (expired)", err)
		}
		// ... but fine while it was valid, and expired from its last second on.
		for _, c := range []struct {
			now  time.Time
			want error
		}{{made.Add(59 * time.Second), nil}, {made.Add(60 * time.Second), ErrBadSignature}} {
			then := &Keyring{entities: kr.entities, now: at(c.now)}
			if err := then.Verify(env); !errors.Is(err, c.want) {
				t.Fatalf("at +%s: %v, want %v", c.now.Sub(made), err, c.want)
			}
		}
	})
	t.Run("unrelated signature lifetime in the future", func(t *testing.T) {
		env := rawSign(t, a, time.Now().Add(-time.Minute), 3600)
		if err := kr.Verify(env); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("text-mode signature", func(t *testing.T) {
		if err := kr.Verify(signMsg(t, a, nil, true)); err != nil {
			t.Fatal(err)
		}
	})
}

// TestVerifyExpiredKey: a signature made while the key was valid still
// verifies after the key expired, as with gpg.
func TestVerifyExpiredKey(t *testing.T) {
	created := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	e, err := openpgp.NewEntity("expiring", "", "exp@example.com", &packet.Config{
		Algorithm:       packet.PubKeyAlgoEdDSA,
		Time:            at(created),
		KeyLifetimeSecs: 24 * 3600,
	})
	if err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	if err := e.Serialize(&pub); err != nil {
		t.Fatal(err)
	}
	kr, err := LoadKeyring(writeFile(t, t.TempDir(), "exp.gpg", pub.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	env := signMsg(t, e, &packet.Config{Time: at(created.Add(time.Hour))}, false)
	if err := kr.Verify(env); err != nil {
		t.Fatalf("signature made before the key expired: %v", err)
	}
}

// TestVerifyRevokedKey: gpg 2.2 accepts a revoked key's signature with a
// warning; this package refuses it, also when another copy of the key without
// the revocation is loaded as well.
func TestVerifyRevokedKey(t *testing.T) {
	a := secretA(t)
	if err := a.RevokeKey(packet.KeySuperseded, "test", nil); err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	if err := a.Serialize(&pub); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	revoked := writeFile(t, dir, "revoked.gpg", pub.Bytes())
	env := readEnvelope(t, "signed/g01-dict.json")

	kr, err := LoadKeyring(revoked)
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.Verify(env); !errors.Is(err, ErrKeyRevoked) {
		t.Fatalf("err = %v, want ErrKeyRevoked", err)
	}
	both, err := LoadKeyring(sharedtest.Dir(t, vecDir, "key-a.pub.asc"), revoked)
	if err != nil {
		t.Fatal(err)
	}
	if both.Len() != 1 {
		t.Fatalf("Len %d, want 1", both.Len())
	}
	if err := both.Verify(env); !errors.Is(err, ErrKeyRevoked) {
		t.Fatalf("with an unrevoked copy loaded first: %v, want ErrKeyRevoked", err)
	}
	// And the revoked key cannot be used to sign.
	var sec bytes.Buffer
	if err := a.SerializePrivateWithoutSigning(&sec, nil); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "revoked-sec.gpg")
	if err := os.WriteFile(p, sec.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewSigner("", p); !errors.Is(err, ErrNoKey) {
		t.Fatalf("NewSigner with a revoked key: %v, want ErrNoKey", err)
	}
}

// TestSigningSubkey: a key whose signatures come from a signing subkey
// (common for real gpg keys) signs and verifies; the issuer is the subkey.
func TestSigningSubkey(t *testing.T) {
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA}
	e, err := openpgp.NewEntity("sub", "", "sub@example.com", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.AddSigningSubkey(cfg); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var sec, pub bytes.Buffer
	if err := e.SerializePrivate(&sec, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(&pub); err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner("<sub@example.com>", writeFile(t, dir, "sec.gpg", sec.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	sub := e.Subkeys[len(e.Subkeys)-1].PublicKey
	if s.SigningKeyID() != sub.KeyIdString() {
		t.Fatalf("signs with %s, want the subkey %s", s.SigningKeyID(), sub.KeyIdString())
	}
	// Forcing the primary key with "!".
	forced, err := NewSigner(e.PrimaryKey.KeyIdString()+"!", filepath.Join(dir, "sec.gpg"))
	if err != nil {
		t.Fatal(err)
	}
	if forced.SigningKeyID() != e.PrimaryKey.KeyIdString() {
		t.Fatalf("forced primary: signs with %s", forced.SigningKeyID())
	}
	kr, err := LoadKeyring(writeFile(t, dir, "pub.gpg", pub.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	for _, signer := range []*Signer{s, forced} {
		out, err := signer.Sign(unsignedEnvelope(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := kr.Verify(out); err != nil {
			t.Fatalf("%s: %v", signer.SigningKeyID(), err)
		}
		// Selecting by the subkey's id picks the same entity.
		if _, err := NewSigner(sub.KeyIdString(), filepath.Join(dir, "sec.gpg")); err != nil {
			t.Fatal(err)
		}
	}
}
