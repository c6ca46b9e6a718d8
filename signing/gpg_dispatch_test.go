package signing

import (
	"encoding/json"
	"errors"
	"maps"
	"testing"

	"github.com/gofedmsg/fedmsg/internal/sharedtest"
	"github.com/gofedmsg/fedmsg/message"
	"github.com/gofedmsg/fedmsg/signing/gpg"
)

// The gpg package's signer is a Signer.
var _ Signer = (*gpg.Signer)(nil)

// TestGPGDispatch runs the gpg vectors' cases through the dispatcher (the
// verification itself belongs to package gpg) and checks the mapping of the
// gpg errors onto this package's sentinels.
func TestGPGDispatch(t *testing.T) {
	var m struct {
		Cases []struct {
			ID     string `json:"id"`
			File   string `json:"file"`
			Config struct {
				Backends []string `json:"crypto_validate_backends"`
			} `json:"config"`
			Expected bool `json:"expected"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(sharedtest.Read(t, "fedmsg-gpg", "manifest.json"), &m); err != nil {
		t.Fatal(err)
	}
	kr, err := gpg.LoadKeyring(sharedtest.Dir(t, "fedmsg-gpg", "key-a.pub.asc"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]error{
		"g03-tampered-msg/default":  ErrBadSignature,
		"g05-untrusted-key/default": ErrUntrusted,
		"g01-dict/x509-only":        ErrBackendDisallowed,
	}
	for _, c := range m.Cases {
		t.Run(c.ID, func(t *testing.T) {
			v := defaultValidator(t, func(o *Options) {
				o.Backends = c.Config.Backends
				o.GPG = kr
			})
			env, err := message.DecodeObject(sharedtest.Read(t, "fedmsg-gpg", c.File))
			if err != nil {
				t.Fatal(err)
			}
			err = v.Validate(bg, env)
			if (err == nil) != c.Expected {
				t.Fatalf("verdict %v, fedmsg said %v: %v", err == nil, c.Expected, err)
			}
			if !c.Expected {
				w, ok := want[c.ID]
				if !ok {
					t.Fatalf("no expected sentinel for %v", err)
				}
				if !errors.Is(err, w) {
					t.Fatalf("%v does not wrap %v", err, w)
				}
			}
			if c.ID == "g03-tampered-msg/default" && !errors.Is(err, gpg.ErrBadSignature) {
				t.Errorf("gpg's own sentinel lost: %v", err)
			}
			if c.ID == "g05-untrusted-key/default" && !errors.Is(err, gpg.ErrUnknownKey) {
				t.Errorf("gpg's own sentinel lost: %v", err)
			}
			if c.Expected {
				// gpg identifies no signer: validate_signed_by never passes.
				if err := v.ValidateSignedBy(bg, env, "anyone"); !errors.Is(err, ErrRoutingPolicy) {
					t.Errorf("ValidateSignedBy on gpg: %v", err)
				}
			}
		})
	}

	g01, _ := message.DecodeObject(sharedtest.Read(t, "fedmsg-gpg", "signed/g01-dict.json"))
	both := defaultValidator(t, func(o *Options) { o.Backends = []string{"x509", "gpg"} })
	if err := both.Validate(bg, g01); !errors.Is(err, ErrTrustUnavailable) {
		t.Errorf("gpg allowed but no keyring: %v", err)
	}
	withKR := defaultValidator(t, func(o *Options) { o.Backends = []string{"x509", "gpg"}; o.GPG = kr })
	if err := withKR.Validate(bg, vectorEnv(t, "signed/v01-ascii.json")); err != nil {
		t.Errorf("x509 message with both backends: %v", err)
	}
	// An x509-signed message relabelled gpg (t05) with gpg allowed: the gpg
	// check fails, never panics.
	if err := withKR.Validate(bg, vectorEnv(t, "signed/t05-crypto-gpg.json")); err == nil {
		t.Error("t05 validated as gpg")
	}
	// Backend guessing: signature only → gpg.
	noCrypto := maps.Clone(g01)
	delete(noCrypto, "crypto")
	if b, err := Backend(noCrypto); b != "gpg" || err != nil {
		t.Errorf("Backend without crypto/certificate: %q %v", b, err)
	}
	if err := withKR.Validate(bg, noCrypto); err != nil {
		t.Errorf("gpg guessed from the signature field: %v", err)
	}
	bad := maps.Clone(g01)
	bad["signature"] = message.Number("1")
	if err := withKR.Validate(bg, bad); !errors.Is(err, ErrMalformed) || !errors.Is(err, gpg.ErrMalformed) {
		t.Errorf("gpg signature of the wrong type: %v", err)
	}
}
