package signing

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofedmsg/fedmsg/message"
)

// wantSentinel is the reason each negative manifest case must be rejected
// with. Every case whose expected verdict is false must be listed here.
var wantSentinel = map[string]error{
	"n01-rogue/default":            ErrUntrusted,
	"n01-rogue/policy-allows-cn":   ErrUntrusted,
	"n02-revoked/default":          ErrRevoked,
	"v03-nested/expired-crl":       ErrCRLExpired,
	"t05-crypto-gpg/default":       ErrBackendDisallowed,
	"t08-unsigned/default":         ErrUnsigned,
	"t01-tampered-body/default":    ErrBadSignature,
	"t02-tampered-topic/default":   ErrBadSignature,
	"t03-timestamp-float/default":  ErrBadSignature,
	"t04-no-crypto-field/default":  ErrBadSignature,
	"t09-swapped-cert/default":     ErrBadSignature,
	"t10-seq-id-added/default":     ErrBadSignature,
	"v02-unicode/policy-violation": ErrRoutingPolicy,
	"v01-ascii/nitpicky-unlisted":  ErrRoutingPolicy,
	"v01-ascii/signed-by-wrong":    ErrRoutingPolicy,
}

var allSentinels = []error{
	ErrUnsigned, ErrUnknownBackend, ErrBackendDisallowed, ErrMalformed, ErrBadSignature,
	ErrUntrusted, ErrCertNotValid, ErrRevoked, ErrCRLExpired, ErrCRLInvalid,
	ErrRoutingPolicy, ErrTrustUnavailable, ErrNoCertificate,
}

// sentinelsOf lists the package sentinels err wraps.
func sentinelsOf(err error) []error {
	var out []error
	for _, s := range allSentinels {
		if errors.Is(err, s) {
			out = append(out, s)
		}
	}
	return out
}

// TestManifestCases runs every validation case recorded from real fedmsg and
// compares the verdict (and, for rejections, the reason).
func TestManifestCases(t *testing.T) {
	m := loadManifest(t)
	dir := x509Dir(t)
	if len(m.Cases) != 29 {
		t.Errorf("manifest has %d cases, the suite was written for 29", len(m.Cases))
	}
	for _, c := range m.Cases {
		t.Run(c.ID, func(t *testing.T) {
			o := Options{
				CACertLocation:  filepath.Join(dir, c.Config.CACertLocation),
				RoutingPolicy:   c.Config.RoutingPolicy,
				RoutingNitpicky: c.Config.RoutingNitpicky,
			}
			if c.Config.CRLLocation != nil {
				o.CRLLocation = strPtr(filepath.Join(dir, *c.Config.CRLLocation))
			}
			v, err := NewValidator(o)
			if err != nil {
				t.Fatal(err)
			}
			env := vectorEnv(t, c.File)
			switch c.Validator {
			case "validate":
				err = v.Validate(bg, env)
			case "validate_signed_by":
				if c.Signer == "" {
					t.Fatal("validate_signed_by case without signer")
				}
				err = v.ValidateSignedBy(bg, env, c.Signer)
			default:
				t.Fatalf("unknown validator %q", c.Validator)
			}
			if got := err == nil; got != c.Expected {
				t.Fatalf("verdict %v, real fedmsg said %v (fedmsg log %q); error: %v", got, c.Expected, c.Log, err)
			}
			if c.Expected {
				return
			}
			want, ok := wantSentinel[c.ID]
			if !ok {
				t.Fatalf("negative case without an expected sentinel; got %v", err)
			}
			if !errors.Is(err, want) {
				t.Fatalf("error %v does not wrap %v", err, want)
			}
			if s := sentinelsOf(err); len(s) != 1 {
				t.Errorf("error wraps %d sentinels (%v), want exactly one", len(s), s)
			}
			// The bytes path gives the same verdict.
			if c.Validator == "validate" {
				if err2 := v.ValidateBytes(bg, vectorBytes(t, c.File)); !errors.Is(err2, want) {
					t.Errorf("ValidateBytes: %v, want %v", err2, want)
				}
			}
		})
	}
}

// TestSigningInputs checks the re-canonicalised envelope minus credentials
// against the bytes real fedmsg signed, for every published vector.
func TestSigningInputs(t *testing.T) {
	m := loadManifest(t)
	n := 0
	for _, f := range m.Files {
		if f.SigningInputFile == "" {
			continue
		}
		n++
		env := vectorEnv(t, f.File)
		got, err := message.Canonical(message.WithoutCredentials(env))
		if err != nil {
			t.Fatal(err)
		}
		want := vectorBytes(t, f.SigningInputFile)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: signing input differs:\n got %s\nwant %s", f.ID, got, want)
		}
		sum := sha1.Sum(want)
		if hex.EncodeToString(sum[:]) != f.SigningInputSHA1 {
			t.Errorf("%s: sha1 of the recorded signing input is not the manifest's", f.ID)
		}
	}
	if n != 9 {
		t.Errorf("%d published vectors with a signing input, want 9", n)
	}
}

// TestSignReproducesVectors: RSA PKCS#1 v1.5 is deterministic, so signing
// the unsigned envelope of each published vector with its key must give
// the captured frame byte for byte.
func TestSignReproducesVectors(t *testing.T) {
	m := loadManifest(t)
	n := 0
	for _, f := range m.Files {
		if f.ProducedBy == "" {
			continue
		}
		t.Run(f.ID, func(t *testing.T) {
			n++
			want := vectorBytes(t, f.File)
			env := vectorEnv(t, f.File)
			for _, k := range []string{"signature", "certificate", "crypto"} {
				if _, ok := env[k]; !ok {
					t.Fatalf("vector has no %s field", k)
				}
				delete(env, k)
			}
			before := maps.Clone(env)
			s := signerFor(t, f.SigningCertname)
			signed, err := s.Sign(env)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(mapsKeys(env), mapsKeys(before)) {
				t.Errorf("Sign modified the caller's map: keys %v", mapsKeys(env))
			}
			got, err := message.Canonical(signed)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("signed frame differs from fedmsg's:\n got %.300s...\nwant %.300s...", got, want)
			}
			// SignBody from the unsigned bytes gives the same frame.
			unsigned, _ := message.Canonical(env)
			got2, err := s.SignBody(unsigned)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got2, want) {
				t.Fatalf("SignBody differs from fedmsg's frame")
			}
			if strings.Count(signed["signature"].(string), "\n") != 5 {
				t.Errorf("signature not wrapped into 5 lines: %q", signed["signature"])
			}
		})
	}
	if n != 9 {
		t.Errorf("%d published vectors, want 9", n)
	}
}

func mapsKeys(m map[string]any) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

// TestSignValidateRoundTrip: what we sign, we validate, with the CN the
// routing policy sees.
func TestSignValidateRoundTrip(t *testing.T) {
	s := signerFor(t, "bodhi-app01.example.com")
	if s.CommonName() != "bodhi-app01.example.com" {
		t.Fatalf("CommonName %q", s.CommonName())
	}
	v := defaultValidator(t, func(o *Options) {
		o.RoutingPolicy = map[string][]string{"org.fedoraproject.dev.bodhi.x": {"bodhi-app01.example.com"}}
		o.RoutingNitpicky = true
	})
	env := message.NewEnvelope("org.fedoraproject.dev.bodhi.x", map[string]any{"k": "caf\u00e9 \U0001F680", "n": message.Number("1.5e300")}, 3, "me", timeNow())
	signed, err := s.Sign(env)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := env["crypto"]; ok {
		t.Error("Sign set crypto on the caller's map")
	}
	if err := v.Validate(bg, signed); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if err := v.ValidateSignedBy(bg, signed, "bodhi-app01.example.com"); err != nil {
		t.Fatalf("ValidateSignedBy: %v", err)
	}
	if err := v.ValidateSignedBy(bg, signed, "shell-app01.example.com"); !errors.Is(err, ErrRoutingPolicy) {
		t.Fatalf("ValidateSignedBy(other): %v", err)
	}
	// Re-signing an already signed envelope replaces the credentials.
	again, err := s.Sign(signed)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(bg, again); err != nil {
		t.Fatalf("re-signed: %v", err)
	}
	// Another topic under nitpicky: refused by policy, after the signature.
	env["topic"] = "org.fedoraproject.dev.other"
	other, _ := s.Sign(env)
	if err := v.Validate(bg, other); !errors.Is(err, ErrRoutingPolicy) {
		t.Fatalf("nitpicky unlisted: %v", err)
	}
}

// TestSigningDigest: the digest Validate computes is the SHA-1 of the
// recorded signing input, for every published vector.
func TestSigningDigest(t *testing.T) {
	m := loadManifest(t)
	for _, f := range m.Files {
		if f.SigningInputFile == "" {
			continue
		}
		got, err := signingDigest(vectorEnv(t, f.File))
		if err != nil || hex.EncodeToString(got[:]) != f.SigningInputSHA1 {
			t.Errorf("%s: %x (%v), want %s", f.ID, got, err, f.SigningInputSHA1)
		}
	}
}
