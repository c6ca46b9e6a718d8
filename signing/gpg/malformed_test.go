package gpg

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/message"
)

// withSignature returns vector g01 with its signature field replaced (or
// removed when sig is the deleteField marker).
func withSignature(t testing.TB, sig any) map[string]any {
	t.Helper()
	env := readEnvelope(t, "signed/g01-dict.json")
	if sig == deleteField {
		delete(env, message.FieldSignature)
	} else {
		env[message.FieldSignature] = sig
	}
	return env
}

type marker struct{}

var deleteField = marker{}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestVerifyMalformed(t *testing.T) {
	kr := keyringA(t)
	sig := sharedtest.Read(t, vecDir, "signed/g01-dict.sig")
	pubA := dearmor(t, "key-a.pub.asc")
	certSig := selfSignature(t)

	noMsg := withSignature(t, b64(sig))
	delete(noMsg, message.FieldMsg)
	badMsg := withSignature(t, b64(sig))
	badMsg[message.FieldMsg] = map[string]any{"ch": make(chan int)}

	cases := []struct {
		name string
		env  map[string]any
		want error
	}{
		{"nil envelope", nil, ErrMalformed},
		{"no signature field", withSignature(t, deleteField), ErrMalformed},
		{"signature is a number", withSignature(t, message.Number("12")), ErrMalformed},
		{"signature is null", withSignature(t, nil), ErrMalformed},
		{"signature is a bool", withSignature(t, true), ErrMalformed},
		{"signature is an object", withSignature(t, map[string]any{"a": "b"}), ErrMalformed},
		{"signature is a list", withSignature(t, []any{b64(sig)}), ErrMalformed},
		{"empty signature", withSignature(t, ""), ErrMalformed},
		{"only junk characters", withSignature(t, "!!!! ...\n"), ErrMalformed},
		{"bad base64: 1 char over a quad", withSignature(t, "QUJDR"), ErrMalformed},
		{"bad base64: missing padding", withSignature(t, b64(sig)[:len(b64(sig))-2]), ErrMalformed},
		{"bad base64: non-ASCII", withSignature(t, "iQEz\u00e9"+b64(sig)[4:]), ErrMalformed},
		{"base64 of garbage", withSignature(t, b64([]byte("this is not an OpenPGP signature"))), ErrMalformed},
		{"base64 of high-bit garbage", withSignature(t, b64(bytes.Repeat([]byte{0xff}, 40))), ErrMalformed},
		{"base64 of a zero byte", withSignature(t, b64([]byte{0})), ErrMalformed},
		{"truncated signature", withSignature(t, b64(sig[:100])), ErrMalformed},
		{"signature plus a junk byte", withSignature(t, b64(append(bytes.Clone(sig), 0x00))), ErrMalformed},
		{"a public key instead of a signature", withSignature(t, b64(pubA)), ErrMalformed},
		{"signature plus a public key", withSignature(t, b64(append(bytes.Clone(sig), pubA...))), ErrMalformed},
		{"key certification, not a document signature", withSignature(t, b64(certSig)), ErrMalformed},
		{"armored text in the field (not base64 of it)", withSignature(t, string(armoredSig(t, sig))), ErrMalformed},
		{"base64 of armor with a bad checksum", withSignature(t, b64(corruptArmor(t, armoredSig(t, sig)))), ErrMalformed},
		{"base64 of an armored public key", withSignature(t, b64(sharedtest.Read(t, vecDir, "key-a.pub.asc"))), ErrMalformed},
		{"no msg field", noMsg, ErrMalformed},
		{"msg without canonical form", badMsg, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := kr.Verify(c.env)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if err := kr.verify(c.env); !errors.Is(err, c.want) { // no panic without the guard either
				t.Fatalf("verify: %v", err)
			}
		})
	}
}

// selfSignature returns key A's user ID self-signature (class 0x13) as one
// binary packet.
func selfSignature(t testing.TB) []byte {
	t.Helper()
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(sharedtest.Read(t, vecDir, "key-a.pub.asc")))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range el[0].Identities {
		var buf bytes.Buffer
		if err := id.SelfSignature.Serialize(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	t.Fatal("key A has no identity")
	return nil
}

// TestVerifyLenient: signature encodings fedmsg (Python's b64decode plus
// gpg --verify) accepts.
func TestVerifyLenient(t *testing.T) {
	kr := keyringA(t)
	sig := sharedtest.Read(t, vecDir, "signed/g01-dict.sig")
	s := b64(sig)
	var wrapped strings.Builder
	for i := 0; i < len(s); i += 76 {
		wrapped.WriteString(s[i:min(i+76, len(s))])
		wrapped.WriteString("\n")
	}
	cases := []struct {
		name string
		sig  any
	}{
		{"as is", s},
		{"wrapped at 76 with newlines (Python 2 encode('base64'))", wrapped.String()},
		{"CRLF and spaces", " " + strings.ReplaceAll(wrapped.String(), "\n", "\r\n\t ")},
		{"junk before (skipped by Python)", "!!!!" + s},
		{"junk after the padding (ignored by Python)", s + "junk=="},
		{"bytes", []byte(s)},
		{"base64 of an ASCII-armored signature (gpg detects armor)", b64(armoredSig(t, sig))},
		{"the same signature twice", b64(append(bytes.Clone(sig), sig...))},
		{"a marker packet first", b64(append([]byte{0xa8, 0x03, 'P', 'G', 'P'}, sig...))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := kr.Verify(withSignature(t, c.sig)); err != nil {
				t.Fatalf("rejected: %v", err)
			}
		})
	}

	// Two signatures, one by a key not in the keyring: gpg --verify fails
	// (exit 2), so does Verify.
	sigB := sharedtest.Read(t, vecDir, "signed/g05-untrusted-key.sig")
	if err := kr.Verify(withSignature(t, b64(append(bytes.Clone(sig), sigB...)))); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("A+B signatures: %v, want ErrUnknownKey", err)
	}
	// A signature by B over other data, B known: bad, not unknown.
	krAB, err := LoadKeyring(sharedtest.Dir(t, vecDir, "key-a.pub.asc"), sharedtest.Dir(t, vecDir, "key-b.pub.asc"))
	if err != nil {
		t.Fatal(err)
	}
	if err := krAB.Verify(withSignature(t, b64(sigB))); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("B's signature of other data: %v, want ErrBadSignature", err)
	}
}

// TestDecodeBase64 compares with what Python 3.11's base64.b64decode returned
// for the same inputs (recorded by hand).
func TestDecodeBase64(t *testing.T) {
	cases := []struct {
		in   string
		want string // hex; "ERR" for an exception
	}{
		{"QUJD", "414243"},
		{"QUJDRA==", "41424344"},
		{"QUJDRA", "ERR"}, // Incorrect padding
		{"QUJDR", "ERR"},  // 1 more than a multiple of 4
		{"QUJD\nRA==\n", "41424344"},
		{" Q U J D ", "414243"},
		{"!!!!QUJD", "414243"},
		{"QQ==QUJD", "41"},
		{"QR==", "41"},
		{"QUJDRA==junk", "41424344"},
		{"Q=Q=", "ERR"},
		{"=QUJD", "414243"},
		{"QU=JD", "414243"},
		{"QUJDRA=", "ERR"},
		{"", ""},
		{"====", ""},
		{"QUJDRE", "ERR"},
		{"QUJDREU=", "4142434445"},
		{"Q", "ERR"},
		{"QU", "ERR"},
		{"QUJ", "ERR"},
		{"QUJD\u00e9", "ERR"}, // ValueError: only ASCII characters
	}
	for _, c := range cases {
		got, err := decodeBase64(c.in)
		switch {
		case c.want == "ERR" && err == nil:
			t.Errorf("decodeBase64(%q) = %x, Python raises", c.in, got)
		case c.want != "ERR" && err != nil:
			t.Errorf("decodeBase64(%q): %v, Python gives %s", c.in, err, c.want)
		case c.want != "ERR" && hex.EncodeToString(got) != c.want:
			t.Errorf("decodeBase64(%q) = %x, Python gives %s", c.in, got, c.want)
		}
	}
	// Round trip of every byte value, standard and unpadded-free forms.
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for n := 0; n <= len(all); n++ {
		got, err := decodeBase64(base64.StdEncoding.EncodeToString(all[:n]))
		if err != nil || !bytes.Equal(got, all[:n]) {
			t.Fatalf("round trip of %d bytes: %x, %v", n, got, err)
		}
	}
}
