package gpg

import (
	"encoding/base64"
	"errors"
	"testing"

	"github.com/gofedmsg/fedmsg/message"
)

// FuzzVerify feeds arbitrary signature bytes (base64-encoded into vector
// g01's envelope, and also used verbatim as the field's text) and an
// arbitrary msg (JSON when it parses, else a string) to Verify. It must never
// panic — the unguarded verify is called so that a panic in our code or in
// go-crypto is seen — and every failure must wrap one of the sentinels.
//
// Seeds: testdata/fuzz/FuzzVerify (the vectors' signatures and msgs, armor,
// truncations, key packets, several signatures...).
func FuzzVerify(f *testing.F) {
	kr := keyringA(f)
	base := readEnvelope(f, "signed/g01-dict.json")
	sentinels := []error{ErrMalformed, ErrUnknownKey, ErrBadSignature, ErrKeyRevoked}

	f.Fuzz(func(t *testing.T, sig []byte, msgJSON []byte) {
		var msg any = string(msgJSON)
		if v, err := message.Decode(msgJSON); err == nil {
			msg = v
		}
		for _, field := range []any{base64.StdEncoding.EncodeToString(sig), string(sig), sig} {
			env := copyEnv(base)
			env[message.FieldSignature] = field
			env[message.FieldMsg] = msg
			err := kr.verify(env)
			if err == nil {
				// Only a genuine signature by key A over canonical(msg)
				// gets here: check it with the detached API too.
				data, cerr := message.Canonical(msg)
				raw, derr := decodeBase64(stringOf(field))
				if cerr != nil || derr != nil {
					t.Fatalf("accepted, but canonical: %v, base64: %v", cerr, derr)
				}
				if err := kr.VerifyDetached(data, raw); err != nil {
					t.Fatalf("Verify accepted what VerifyDetached rejects: %v", err)
				}
				continue
			}
			if !isSentinel(err, sentinels) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			if err2 := kr.Verify(env); !errors.Is(err2, unwrapSentinel(err, sentinels)) {
				t.Fatalf("Verify and verify disagree: %v / %v", err2, err)
			}
		}
	})
}

func stringOf(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

func isSentinel(err error, sentinels []error) bool {
	return unwrapSentinel(err, sentinels) != nil
}

func unwrapSentinel(err error, sentinels []error) error {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}
