package gpg

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/message"
)

const vecDir = "fedmsg-gpg"

// gpgManifest is the part of fedmsg-gpg/manifest.json the tests use.
type gpgManifest struct {
	Keys struct {
		KeyAFingerprint string   `json:"key_a_fingerprint"`
		KeyBFingerprint string   `json:"key_b_fingerprint"`
		Files           []string `json:"files"`
	} `json:"keys"`
	Files []struct {
		ID                    string `json:"id"`
		File                  string `json:"file"`
		Topic                 string `json:"topic"`
		SignedWith            string `json:"signed_with"`
		SignedDataFile        string `json:"signed_data_file"`
		DetachedSignatureFile string `json:"detached_signature_file"`
		DerivedFrom           string `json:"derived_from"`
	} `json:"files"`
	Cases []struct {
		ID          string `json:"id"`
		File        string `json:"file"`
		Description string `json:"description"`
		Config      struct {
			GPGHome                string   `json:"gpg_home"`
			CryptoValidateBackends []string `json:"crypto_validate_backends"`
		} `json:"config"`
		Expected  bool     `json:"expected"`
		FedmsgLog []string `json:"fedmsg_log"`
	} `json:"cases"`
}

func loadManifest(t *testing.T) gpgManifest {
	t.Helper()
	var m gpgManifest
	if err := json.Unmarshal(sharedtest.Read(t, vecDir, "manifest.json"), &m); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(m.Cases) == 0 || len(m.Files) == 0 {
		t.Fatal("manifest.json lists no cases or files")
	}
	return m
}

// keyringA is the verifier keyring of every manifest case: key A's public key
// only.
func keyringA(t testing.TB) *Keyring {
	t.Helper()
	kr, err := LoadKeyring(sharedtest.Dir(t, vecDir, "key-a.pub.asc"))
	if err != nil {
		t.Fatal(err)
	}
	if kr.Len() != 1 {
		t.Fatalf("key-a.pub.asc: %d keys, want 1", kr.Len())
	}
	return kr
}

func keyringB(t testing.TB) *Keyring {
	t.Helper()
	kr, err := LoadKeyring(sharedtest.Dir(t, vecDir, "key-b.pub.asc"))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// readEnvelope decodes a vector envelope the way a receiver does.
func readEnvelope(t testing.TB, file string) map[string]any {
	t.Helper()
	env, err := message.DecodeObject(sharedtest.Read(t, vecDir, file))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return env
}

// negativeSentinel is the error each manifest case that fedmsg rejects must
// wrap, so that a case added to the manifest cannot pass unexamined.
var negativeSentinel = map[string]error{
	"g03-tampered-msg/default":  ErrBadSignature,
	"g05-untrusted-key/default": ErrUnknownKey,
}

// TestManifestCases replays every case of the manifest with a keyring that
// holds only key A's public key, and compares with fedmsg's verdict.
func TestManifestCases(t *testing.T) {
	m := loadManifest(t)
	kr := keyringA(t)
	if len(m.Cases) != 6 {
		t.Errorf("manifest has %d cases, these tests were written for 6", len(m.Cases))
	}
	for _, c := range m.Cases {
		t.Run(c.ID, func(t *testing.T) {
			if !strings.Contains(c.Config.GPGHome, "only key-a.pub.asc") {
				t.Fatalf("unexpected keyring %q: the test only knows key A's", c.Config.GPGHome)
			}
			env := readEnvelope(t, c.File)
			if env[message.FieldCrypto] != CryptoName {
				t.Errorf("crypto = %v, want %q", env[message.FieldCrypto], CryptoName)
			}
			if _, ok := env[message.FieldCertificate]; ok {
				t.Error("a gpg envelope has a certificate field")
			}
			err := kr.Verify(env)

			if !slices.Contains(c.Config.CryptoValidateBackends, "gpg") {
				// fedmsg rejects this one before looking at the signature
				// ("backend is disallowed"): that verdict belongs to the
				// dispatcher in package signing. The gpg part itself is good.
				if c.Expected {
					t.Fatalf("case %s expects true with backends %v: not a gpg-backend verdict", c.ID, c.Config.CryptoValidateBackends)
				}
				if err != nil {
					t.Fatalf("the signature itself should verify: %v", err)
				}
				t.Logf("expected=false comes from crypto_validate_backends=%v (dispatcher's job); signature verifies", c.Config.CryptoValidateBackends)
				return
			}
			if got := err == nil; got != c.Expected {
				t.Fatalf("verdict %v (err %v), fedmsg says %v", got, err, c.Expected)
			}
			if !c.Expected {
				want, ok := negativeSentinel[c.ID]
				if !ok {
					t.Fatalf("no expected sentinel recorded for negative case %s (err %v)", c.ID, err)
				}
				if !errors.Is(err, want) {
					t.Fatalf("err = %v, want %v", err, want)
				}
			}
		})
	}
}

// TestSignedData checks the signed bytes and the detached signatures
// independently of envelope handling.
func TestSignedData(t *testing.T) {
	m := loadManifest(t)
	krA, krB := keyringA(t), keyringB(t)
	n := 0
	for _, f := range m.Files {
		if f.SignedDataFile == "" {
			continue
		}
		n++
		t.Run(f.ID, func(t *testing.T) {
			env := readEnvelope(t, f.File)
			data := sharedtest.Read(t, vecDir, f.SignedDataFile)
			sig := sharedtest.Read(t, vecDir, f.DetachedSignatureFile)

			// The bytes fedmsg signed are canonical(msg), exactly.
			got, err := message.Canonical(env[message.FieldMsg])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("canonical(msg) = %q\nsigned-data    = %q", got, data)
			}
			// The envelope's signature is base64(.sig), unwrapped.
			if s, _ := env[message.FieldSignature].(string); s != base64.StdEncoding.EncodeToString(sig) {
				t.Fatalf("signature field is not base64 of %s", f.DetachedSignatureFile)
			}
			// What gpg made: one v4 signature packet, binary class, SHA-512.
			p, err := packet.Read(bytes.NewReader(sig))
			if err != nil {
				t.Fatal(err)
			}
			ps, ok := p.(*packet.Signature)
			if !ok {
				t.Fatalf("%T, want a signature packet", p)
			}
			if ps.Version != 4 || ps.SigType != packet.SigTypeBinary || ps.Hash != crypto.SHA512 {
				t.Fatalf("v%d class %#x hash %v; spec says v4, 0x00, SHA-512", ps.Version, ps.SigType, ps.Hash)
			}

			// The .sig verifies over the .signed-data with the keyring of its signer.
			var signer, other *Keyring
			var fp string
			switch f.SignedWith {
			case "key A":
				signer, other, fp = krA, krB, m.Keys.KeyAFingerprint
			case "key B":
				signer, other, fp = krB, krA, m.Keys.KeyBFingerprint
			default:
				t.Fatalf("signed_with %q", f.SignedWith)
			}
			if ps.IssuerKeyId == nil || !strings.HasSuffix(fp, fmt.Sprintf("%016X", *ps.IssuerKeyId)) {
				t.Errorf("issuer %v is not the key id of %s", ps.IssuerKeyId, fp)
			}
			if fingerprintHex(ps.IssuerFingerprint) != fp {
				t.Errorf("issuer fingerprint %X, want %s", ps.IssuerFingerprint, fp)
			}
			if err := signer.VerifyDetached(data, sig); err != nil {
				t.Fatalf("with the signer's key: %v", err)
			}
			if err := other.VerifyDetached(data, sig); !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("with the other key: %v, want ErrUnknownKey", err)
			}
			if err := signer.VerifyDetached(append(slices.Clone(data), ' '), sig); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("over changed data: %v, want ErrBadSignature", err)
			}
		})
	}
	if n != 3 {
		t.Errorf("checked %d signed-data files, the manifest had 3", n)
	}
}

// TestVectorKeys checks the key files against the manifest's fingerprints.
func TestVectorKeys(t *testing.T) {
	m := loadManifest(t)
	want := map[string]string{
		"key-a.pub.asc": m.Keys.KeyAFingerprint,
		"key-a.sec.asc": m.Keys.KeyAFingerprint,
		"key-b.pub.asc": m.Keys.KeyBFingerprint,
		"key-b.sec.asc": m.Keys.KeyBFingerprint,
	}
	for _, f := range m.Keys.Files {
		kr, err := LoadKeyring(sharedtest.Dir(t, vecDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if got := kr.Fingerprints(); len(got) != 1 || got[0] != want[f] {
			t.Errorf("%s: fingerprints %v, want [%s]", f, got, want[f])
		}
	}
}
