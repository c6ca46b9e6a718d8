package gpg

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/message"
)

func signerA(t testing.TB) *Signer {
	t.Helper()
	s, err := NewSigner("", sharedtest.Dir(t, vecDir, "key-a.sec.asc"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsignedEnvelope is vector g01 as it was before fedmsg signed it.
func unsignedEnvelope(t testing.TB) map[string]any {
	t.Helper()
	env := readEnvelope(t, "signed/g01-dict.json")
	delete(env, message.FieldSignature)
	delete(env, message.FieldCrypto)
	return env
}

func TestSignRoundTrip(t *testing.T) {
	m := loadManifest(t)
	s := signerA(t)
	if s.Fingerprint() != m.Keys.KeyAFingerprint {
		t.Fatalf("Fingerprint() = %s, want %s", s.Fingerprint(), m.Keys.KeyAFingerprint)
	}
	if !strings.HasSuffix(m.Keys.KeyAFingerprint, s.SigningKeyID()) {
		t.Fatalf("SigningKeyID() = %s", s.SigningKeyID())
	}

	for _, file := range []string{"signed/g01-dict.json", "signed/g02-unicode.json"} {
		t.Run(file, func(t *testing.T) {
			env := readEnvelope(t, file)
			delete(env, message.FieldSignature)
			delete(env, message.FieldCrypto)
			before, err := message.Canonical(env)
			if err != nil {
				t.Fatal(err)
			}
			nKeys := len(env)

			out, err := s.Sign(env)
			if err != nil {
				t.Fatal(err)
			}
			// The caller's map is untouched.
			after, _ := message.Canonical(env)
			if !bytes.Equal(before, after) || len(env) != nKeys {
				t.Fatalf("Sign modified its argument:\n%s\n%s", before, after)
			}
			if out[message.FieldCrypto] != "gpg" {
				t.Fatalf("crypto = %v", out[message.FieldCrypto])
			}
			if _, ok := out[message.FieldCertificate]; ok {
				t.Fatal("Sign added a certificate field")
			}
			for k, v := range env {
				if o, _ := message.Canonical(out[k]); !bytes.Equal(o, mustCanonical(t, v)) {
					t.Fatalf("field %q changed", k)
				}
			}
			if len(out) != nKeys+2 {
				t.Fatalf("result has %d fields, want %d", len(out), nKeys+2)
			}

			sigText, ok := out[message.FieldSignature].(string)
			if !ok {
				t.Fatalf("signature is %T, want a string", out[message.FieldSignature])
			}
			if strings.ContainsAny(sigText, "\r\n ") {
				t.Fatal("signature base64 is wrapped")
			}
			raw, err := base64.StdEncoding.Strict().DecodeString(sigText)
			if err != nil {
				t.Fatalf("not standard padded base64: %v", err)
			}
			checkSignaturePacket(t, raw, s)

			// It verifies, over canonical(msg) only.
			krA := keyringA(t)
			if err := krA.Verify(out); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			data := mustCanonical(t, env[message.FieldMsg])
			if err := krA.VerifyDetached(data, raw); err != nil {
				t.Fatalf("VerifyDetached: %v", err)
			}
			// Survives the wire: encode canonically, decode, verify.
			frame := mustCanonical(t, out)
			back, err := message.DecodeObject(frame)
			if err != nil {
				t.Fatal(err)
			}
			if err := krA.Verify(back); err != nil {
				t.Fatalf("Verify after a round trip through JSON: %v", err)
			}
			topic := copyEnv(out)
			topic[message.FieldTopic] = "org.fedoraproject.dev.logger.hijacked"
			if err := krA.Verify(topic); err != nil {
				t.Fatalf("topic change must not matter (vector g04): %v", err)
			}
			tampered := copyEnv(out)
			tampered[message.FieldMsg] = map[string]any{"log": "tampered"}
			if err := krA.Verify(tampered); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("tampered msg: %v, want ErrBadSignature", err)
			}
			if err := keyringB(t).Verify(out); !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("keyring B: %v, want ErrUnknownKey", err)
			}
		})
	}
}

// checkSignaturePacket asserts raw is what gpg --detach-sign makes.
func checkSignaturePacket(t *testing.T, raw []byte, s *Signer) {
	t.Helper()
	if len(raw) == 0 {
		t.Fatal("empty signature")
	}
	// Packet tag from the first byte: new format 0b11tttttt, old 0b10ttttll.
	var tag byte
	switch {
	case raw[0]&0xC0 == 0xC0:
		tag = raw[0] & 0x3F
	case raw[0]&0xC0 == 0x80:
		tag = (raw[0] >> 2) & 0x0F
	default:
		t.Fatalf("first byte %#x is not an OpenPGP packet header (armored?)", raw[0])
	}
	if tag != 2 {
		t.Fatalf("packet tag %d, want 2 (signature)", tag)
	}
	r := bytes.NewReader(raw)
	p, err := packet.Read(r)
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 0 {
		t.Fatalf("%d bytes after the signature packet", r.Len())
	}
	sig := p.(*packet.Signature)
	if sig.Version != 4 {
		t.Errorf("version %d, want 4", sig.Version)
	}
	if sig.SigType != packet.SigTypeBinary {
		t.Errorf("class %#x, want 0x00 (binary document)", sig.SigType)
	}
	if sig.Hash != crypto.SHA512 {
		t.Errorf("hash %v, want SHA-512", sig.Hash)
	}
	if sig.PubKeyAlgo != packet.PubKeyAlgoRSA {
		t.Errorf("algorithm %v, want RSA", sig.PubKeyAlgo)
	}
	if sig.IssuerKeyId == nil || *sig.IssuerKeyId != s.signingKey.PublicKey.KeyId {
		t.Errorf("issuer %v, want %s", sig.IssuerKeyId, s.SigningKeyID())
	}
	if len(sig.Notations) != 0 {
		t.Errorf("notations %v: gpg adds none", sig.Notations)
	}
}

func mustCanonical(t testing.TB, v any) []byte {
	t.Helper()
	b, err := message.Canonical(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func copyEnv(env map[string]any) map[string]any {
	out := make(map[string]any, len(env))
	for k, v := range env {
		out[k] = v
	}
	return out
}

// TestSignKeepsOtherFields: like fedmsg, everything but crypto and signature
// is carried over as is, an existing crypto is overwritten.
func TestSignKeepsOtherFields(t *testing.T) {
	s := signerA(t)
	env := unsignedEnvelope(t)
	env[message.FieldCrypto] = "x509"
	env["headers"] = map[string]any{"a": "b"}
	out, err := s.Sign(env)
	if err != nil {
		t.Fatal(err)
	}
	if env[message.FieldCrypto] != "x509" {
		t.Fatal("caller's crypto changed")
	}
	if out[message.FieldCrypto] != "gpg" || out["headers"] == nil {
		t.Fatalf("got %v", out)
	}
	if err := keyringA(t).Verify(out); err != nil {
		t.Fatal(err)
	}
}

func TestSignErrors(t *testing.T) {
	s := signerA(t)
	if _, err := s.Sign(map[string]any{"topic": "x"}); err == nil || !strings.Contains(err.Error(), "msg") {
		t.Fatalf("no msg: %v", err)
	}
	if _, err := s.Sign(map[string]any{"msg": struct{}{}}); !errors.Is(err, message.ErrUnsupportedValue) {
		t.Fatalf("uncanonical msg: %v", err)
	}
	var nilSigner *Signer
	if _, err := nilSigner.Sign(unsignedEnvelope(t)); !errors.Is(err, ErrNoKey) {
		t.Fatalf("nil signer: %v", err)
	}
	// A null msg is a msg: fedmsg signs "null".
	out, err := s.Sign(map[string]any{"msg": nil})
	if err != nil {
		t.Fatal(err)
	}
	if err := keyringA(t).Verify(out); err != nil {
		t.Fatal(err)
	}
}

func TestNewSignerSelection(t *testing.T) {
	m := loadManifest(t)
	a := sharedtest.Dir(t, vecDir, "key-a.sec.asc")
	b := sharedtest.Dir(t, vecDir, "key-b.sec.asc")
	fpA, fpB := m.Keys.KeyAFingerprint, m.Keys.KeyBFingerprint
	spaced := func(fp string) string {
		var parts []string
		for i := 0; i < len(fp); i += 4 {
			parts = append(parts, fp[i:i+4])
		}
		return strings.Join(parts, " ")
	}
	good := []struct {
		keyID string
		want  string
	}{
		{fpA, fpA},
		{strings.ToLower(fpA), fpA},
		{spaced(fpA), fpA},
		{"0x" + fpA[24:], fpA},           // long key id
		{strings.ToLower(fpA[32:]), fpA}, // short key id
		{fpA + "!", fpA},
		{fpB, fpB},
		{fpB[24:], fpB},
		{"<gpg-b@example.com>", fpB},
		{"test key A", fpA},
		{"=fedmsg gpg test key B <gpg-b@example.com>", fpB},
	}
	for _, g := range good {
		s, err := NewSigner(g.keyID, a, b)
		if err != nil {
			t.Errorf("NewSigner(%q): %v", g.keyID, err)
			continue
		}
		if s.Fingerprint() != g.want {
			t.Errorf("NewSigner(%q) picked %s, want %s", g.keyID, s.Fingerprint(), g.want)
		}
	}

	// Only one key: an empty key id picks it.
	if s, err := NewSigner("", b); err != nil || s.Fingerprint() != fpB {
		t.Fatalf("NewSigner(\"\", b): %v", err)
	}
	// Same key twice is still one key.
	if _, err := NewSigner("", a, a); err != nil {
		t.Fatalf("key A twice: %v", err)
	}

	bad := []struct {
		name, keyID string
		paths       []string
		want        error
		mention     string
	}{
		{"unknown fingerprint", "0123456789ABCDEF0123456789ABCDEF01234567", []string{a, b}, ErrNoKey, "0123456789ABCDEF0123456789ABCDEF01234567"},
		{"unknown uid", "nobody@example.com", []string{a}, ErrNoKey, "nobody@example.com"},
		{"B not in A's file", fpB, []string{a}, ErrNoKey, fpB},
		{"two keys, no id", "", []string{a, b}, ErrNoKey, fpB},
		{"public key only", "", []string{sharedtest.Dir(t, vecDir, "key-a.pub.asc")}, ErrNoKey, "key-a.pub.asc"},
		{"ambiguous uid", "fedmsg gpg test key", []string{a, b}, nil, "ambiguous"},
		{"no files", fpA, nil, nil, "no secret key file"},
		{"missing file", fpA, []string{filepath.Join(t.TempDir(), "nope.asc")}, nil, "nope.asc"},
		{"directory", fpA, []string{t.TempDir()}, nil, "export-secret-keys"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewSigner(c.keyID, c.paths...)
			if err == nil {
				t.Fatal("no error")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.mention) {
				t.Fatalf("err %q does not mention %q", err, c.mention)
			}
		})
	}
}

// TestNewSignerEncrypted: a passphrase-protected key is refused, saying so.
func TestNewSignerEncrypted(t *testing.T) {
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(sharedtest.Read(t, vecDir, "key-a.sec.asc")))
	if err != nil {
		t.Fatal(err)
	}
	if err := el[0].EncryptPrivateKeys([]byte("secret"), nil); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := el[0].SerializePrivateWithoutSigning(&buf, nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "encrypted.gpg")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = NewSigner("", path)
	if err == nil || !strings.Contains(err.Error(), "passphrase") || !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("err = %v, want one about an encrypted key", err)
	}
}

// TestConcurrentUse runs Sign and Verify from many goroutines (for -race).
func TestConcurrentUse(t *testing.T) {
	s := signerA(t)
	kr := keyringA(t)
	base := unsignedEnvelope(t)
	g02 := readEnvelope(t, "signed/g02-unicode.json")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env := copyEnv(base)
			env[message.FieldMsg] = map[string]any{"n": int64(i)}
			out, err := s.Sign(env)
			if err == nil {
				err = kr.Verify(out)
			}
			if err == nil {
				err = kr.Verify(g02)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
