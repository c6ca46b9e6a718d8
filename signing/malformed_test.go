package signing

import (
	"encoding/base64"
	"encoding/pem"
	"errors"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofedmsg/fedmsg/message"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestMalformedInputs: every kind of broken credential gives its own
// sentinel, never a panic and never success.
func TestMalformedInputs(t *testing.T) {
	v := defaultValidator(t, nil)
	good := vectorEnv(t, "signed/v01-ascii.json")
	sig := good["signature"].(string)
	cert := good["certificate"].(string)
	certPEM, err := decodeBase64(nil, cert)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)

	set := func(kv ...any) map[string]any {
		env := maps.Clone(good)
		for i := 0; i < len(kv); i += 2 {
			k := kv[i].(string)
			if kv[i+1] == deleteMe {
				delete(env, k)
			} else {
				env[k] = kv[i+1]
			}
		}
		return env
	}
	cases := []struct {
		name string
		env  map[string]any
		want error // nil: valid
	}{
		{"untouched", set(), nil},
		{"junk before signature base64", set("signature", "!!!!"+sig), nil},
		{"junk everywhere in the certificate base64", set("certificate", "\t*"+strings.ReplaceAll(cert, "\n", "\r\n#")), nil},
		{"text after the signature padding", set("signature", sig+"====AAAA"), nil},
		{"text before the PEM", set("certificate", b64("junk line\n"+string(certPEM))), nil},
		{"credentials as bytes", set("signature", []byte(sig), "certificate", []byte(cert)), nil},
		{"signature bytes not UTF-8", set("signature", []byte{0xff}), ErrMalformed},
		{"signature is a number", set("signature", message.Number("5")), ErrMalformed},
		{"signature is null", set("signature", nil), ErrMalformed},
		{"signature is an object", set("signature", map[string]any{}), ErrMalformed},
		{"certificate is a list", set("certificate", []any{cert}), ErrMalformed},
		{"certificate is a bool", set("certificate", true), ErrMalformed},
		{"signature bad padding", set("signature", "abc"), ErrMalformed},
		{"signature one char too many", set("signature", "AAAAA"), ErrMalformed},
		{"signature non-ASCII", set("signature", "é"+sig), ErrMalformed},
		{"certificate bad padding", set("certificate", cert[:len(cert)-3]), ErrMalformed},
		{"certificate non-ASCII", set("certificate", cert+"\u00e9"), ErrMalformed},
		{"certificate not PEM", set("certificate", b64("hello world")), ErrMalformed},
		{"certificate empty", set("certificate", ""), ErrMalformed},
		{"certificate PEM of a key", set("certificate", b64(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: block.Bytes})))), ErrMalformed},
		{"certificate PEM with bad DER", set("certificate", b64(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03, 1, 2, 3}})))), ErrMalformed},
		{"certificate PEM with truncated DER", set("certificate", b64(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes[:len(block.Bytes)-10]})))), ErrMalformed},
		{"signature empty", set("signature", ""), ErrBadSignature},
		{"signature too short", set("signature", base64.StdEncoding.EncodeToString(make([]byte, 255))), ErrBadSignature},
		{"signature too long", set("signature", base64.StdEncoding.EncodeToString(make([]byte, 300))), ErrBadSignature},
		{"signature zeros", set("signature", base64.StdEncoding.EncodeToString(make([]byte, 256))), ErrBadSignature},
		{"crypto unknown", set("crypto", "rsa"), ErrUnknownBackend},
		{"crypto empty", set("crypto", ""), ErrUnknownBackend},
		{"crypto number", set("crypto", message.Number("1")), ErrUnknownBackend},
		{"crypto null", set("crypto", nil), ErrUnknownBackend},
		{"crypto list", set("crypto", []any{"x509"}), ErrUnknownBackend},
		{"x509 without certificate", set("certificate", deleteMe), ErrMalformed},
		{"x509 without signature", set("signature", deleteMe), ErrMalformed},
		{"only a signature: gpg, not allowed", set("crypto", deleteMe, "certificate", deleteMe), ErrBackendDisallowed},
		{"nothing", set("crypto", deleteMe, "certificate", deleteMe, "signature", deleteMe), ErrUnsigned},
		{"nil envelope", nil, ErrMalformed},
		{"unencodable value", set("msg", struct{}{}), ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := v.Validate(bg, c.env)
			if c.want == nil {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if s := sentinelsOf(err); len(s) != 1 {
				t.Errorf("wraps %v, want exactly one sentinel", s)
			}
		})
	}

	for _, c := range []struct {
		body string
		want error
	}{
		{"", ErrMalformed},
		{"not json", ErrMalformed},
		{"[1,2]", ErrMalformed},
		{`"str"`, ErrMalformed},
		{`{"a":1} x`, ErrMalformed},
		{"{}", ErrUnsigned},
		{`{"crypto":"x509","signature":"","certificate":""}`, ErrMalformed},
		{`{"crypto":"x509","signature":1,"certificate":[]}`, ErrMalformed},
	} {
		if err := v.ValidateBytes(bg, []byte(c.body)); !errors.Is(err, c.want) {
			t.Errorf("ValidateBytes(%q) = %v, want %v", c.body, err, c.want)
		}
	}
	if err := v.ValidateSignedBy(bg, set("topic", message.Number("3")), "x"); !errors.Is(err, ErrMalformed) {
		t.Errorf("ValidateSignedBy with a numeric topic: %v", err)
	}
	if err := v.ValidateSignedBy(bg, nil, "x"); !errors.Is(err, ErrMalformed) {
		t.Errorf("ValidateSignedBy(nil): %v", err)
	}
}

var deleteMe = &struct{ x int }{}

// TestNonRSACertificate: an ECDSA certificate properly issued by the CA
// passes the chain check (as in OpenSSL) and is then refused as malformed
// (Python raises TypeError there), whereas an RSA one from the same CA
// validates.
func TestNonRSACertificate(t *testing.T) {
	dir := t.TempDir()
	p := newTestPKI(t, "EC test CA", 0)
	writeFile(t, filepath.Join(dir, "ca.crt"), p.caPEM)
	_, ec := testKeys(t)
	now := time.Now()
	_, ecPEM := p.issue(t, "ec.example.com", 0x2001, &ec.PublicKey, now.Add(-time.Hour), now.Add(time.Hour))

	v, err := NewValidator(Options{CACertLocation: filepath.Join(dir, "ca.crt")})
	if err != nil {
		t.Fatal(err)
	}
	rsaSigner := p.leafSigner(t, dir, "rsa.example.com", 0x2002, 1, now.Add(-time.Hour), now.Add(time.Hour))
	env := message.NewEnvelope("org.fedoraproject.dev.x.y", map[string]any{"a": "b"}, 1, "u", now)
	signed, err := rsaSigner.Sign(env)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(bg, signed); err != nil {
		t.Fatalf("RSA leaf of the same CA: %v", err)
	}
	ecEnv := maps.Clone(signed)
	ecEnv["certificate"] = wrapBase64(ecPEM)
	err = v.Validate(bg, ecEnv)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "ECDSA") {
		t.Fatalf("ECDSA leaf: %v, want ErrMalformed naming ECDSA", err)
	}
	// The same ECDSA certificate from an untrusted CA fails the chain first.
	other := newTestPKI(t, "EC test CA", 2)
	_, roguePEM := other.issue(t, "ec.example.com", 0x2001, &ec.PublicKey, now.Add(-time.Hour), now.Add(time.Hour))
	ecEnv["certificate"] = wrapBase64(roguePEM)
	if err := v.Validate(bg, ecEnv); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("ECDSA leaf of a rogue CA with the same name: %v, want ErrUntrusted", err)
	}
	// An ECDSA key for the signer is refused when loading it.
	if _, err := NewX509Signer(writeTemp(t, dir, "ec.crt", ecPEM), filepath.Join(dir, "rsa.example.com.key")); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("NewX509Signer with an ECDSA certificate: %v", err)
	}
}

func writeTemp(tb testing.TB, dir, name string, data []byte) string {
	p := filepath.Join(dir, name)
	writeFile(tb, p, data)
	return p
}

// TestValidityPeriods: the certificate's and the CA's dates, and the CRL's,
// are checked at Now(), with OpenSSL's precedence (CRL before certificates).
func TestValidityPeriods(t *testing.T) {
	env := vectorEnv(t, "signed/v01-ascii.json")
	at := func(ts string, withCRL bool) error {
		now, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			t.Fatal(err)
		}
		v := defaultValidator(t, func(o *Options) {
			o.Now = func() time.Time { return now }
			if !withCRL {
				o.CRLLocation = nil
			}
		})
		return v.Validate(bg, env)
	}
	for _, c := range []struct {
		ts      string
		withCRL bool
		want    error
	}{
		{"2030-01-01T00:00:00Z", true, nil},
		{"2020-01-01T00:00:00Z", true, nil}, // notBefore and lastUpdate are inclusive
		{"2049-12-31T23:59:58Z", true, nil},
		{"2049-12-31T23:59:59Z", true, ErrCRLExpired}, // nextUpdate is not
		{"2050-06-01T00:00:00Z", true, ErrCRLExpired},
		{"2050-06-01T00:00:00Z", false, ErrCertNotValid},
		{"2049-12-31T23:59:59Z", false, ErrCertNotValid},
		{"2019-06-01T00:00:00Z", true, ErrCRLInvalid}, // CRL not yet valid
		{"2019-06-01T00:00:00Z", false, ErrCertNotValid},
	} {
		err := at(c.ts, c.withCRL)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("at %s (CRL %v): %v, want %v", c.ts, c.withCRL, err, c.want)
		}
	}

	// A leaf that expired while its CA is still valid.
	dir := t.TempDir()
	p := newTestPKI(t, "dates CA", 0)
	writeFile(t, filepath.Join(dir, "ca.crt"), p.caPEM)
	now := time.Now()
	s := p.leafSigner(t, dir, "old.example.com", 0x3001, 1, now.Add(-48*time.Hour), now.Add(-time.Hour))
	v, err := NewValidator(Options{CACertLocation: filepath.Join(dir, "ca.crt")})
	if err != nil {
		t.Fatal(err)
	}
	signed, _ := s.Sign(message.NewEnvelope("t", "m", 1, "u", now))
	if err := v.Validate(bg, signed); !errors.Is(err, ErrCertNotValid) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired leaf: %v", err)
	}
}

// TestCRLNotFromTheCA: a CRL with the CA's name but another key, or from
// another CA, is ErrCRLInvalid (OpenSSL: CRL signature failure / unable to
// get certificate CRL).
func TestCRLNotFromTheCA(t *testing.T) {
	dir := t.TempDir()
	p := newTestPKI(t, "CRL CA", 0)
	impostor := newTestPKI(t, "CRL CA", 2) // same name, other key
	other := newTestPKI(t, "Other CA", 3)
	writeFile(t, filepath.Join(dir, "ca.crt"), p.caPEM)
	now := time.Now()
	s := p.leafSigner(t, dir, "a.example.com", 0x4001, 1, now.Add(-time.Hour), now.Add(time.Hour))
	signed, _ := s.Sign(message.NewEnvelope("t", "m", 1, "u", now))
	for name, crl := range map[string][]byte{
		"impostor": impostor.crl(t, 1, now.Add(-time.Hour), now.Add(time.Hour)),
		"other":    other.crl(t, 1, now.Add(-time.Hour), now.Add(time.Hour)),
		"garbage":  []byte("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"),
		"empty":    nil,
	} {
		path := writeTemp(t, dir, name+".pem", crl)
		v, err := NewValidator(Options{CACertLocation: filepath.Join(dir, "ca.crt"), CRLLocation: &path})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Validate(bg, signed); !errors.Is(err, ErrCRLInvalid) {
			t.Errorf("%s CRL: %v, want ErrCRLInvalid", name, err)
		}
		if v.LoadError() == nil {
			t.Errorf("%s CRL: LoadError is nil", name)
		}
	}
	good := writeTemp(t, dir, "good.pem", p.crl(t, 1, now.Add(-time.Hour), now.Add(time.Hour)))
	v, _ := NewValidator(Options{CACertLocation: filepath.Join(dir, "ca.crt"), CRLLocation: &good})
	if err := v.Validate(bg, signed); err != nil {
		t.Fatalf("good CRL: %v", err)
	}
}

// TestTrustUnavailable: a CA that cannot be read or parsed gives
// ErrTrustUnavailable for x509 messages, without panicking.
func TestTrustUnavailable(t *testing.T) {
	dir := t.TempDir()
	env := vectorEnv(t, "signed/v01-ascii.json")
	for name, loc := range map[string]string{
		"missing":  filepath.Join(dir, "nope.crt"),
		"not PEM":  writeTemp(t, dir, "bad.crt", []byte("hello")),
		"bad DER":  writeTemp(t, dir, "bad2.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}})),
		"file URL": "file://" + filepath.Join(dir, "nope.crt"),
	} {
		v, err := NewValidator(Options{CACertLocation: loc})
		if err != nil {
			t.Fatalf("%s: NewValidator: %v", name, err)
		}
		if v.LoadError() == nil {
			t.Errorf("%s: LoadError is nil", name)
		}
		if err := v.Validate(bg, env); !errors.Is(err, ErrTrustUnavailable) {
			t.Errorf("%s: %v, want ErrTrustUnavailable", name, err)
		}
		// Malformed credentials still say so first, as in fedmsg.
		bad := maps.Clone(env)
		bad["signature"] = "abc"
		if err := v.Validate(bg, bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: bad base64: %v", name, err)
		}
	}
	// A file:// URL that exists works.
	v, err := NewValidator(Options{CACertLocation: "file://" + filepath.Join(x509Dir(t), "ca.crt")})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(bg, env); err != nil {
		t.Fatalf("file:// CA: %v", err)
	}
}

func TestOptionsErrors(t *testing.T) {
	if _, err := NewValidator(Options{CACertLocation: "x", Backends: []string{"x509", "pgp"}}); err == nil {
		t.Error("unknown backend accepted")
	}
	if _, err := NewValidator(Options{}); err == nil {
		t.Error("x509 without CA location accepted")
	}
	v, err := NewValidator(Options{Backends: []string{"gpg"}})
	if err != nil {
		t.Fatalf("gpg only, no CA: %v", err)
	}
	if err := v.Validate(bg, vectorEnv(t, "signed/v01-ascii.json")); !errors.Is(err, ErrBackendDisallowed) {
		t.Errorf("x509 message with gpg-only backends: %v", err)
	}
}

// TestOnlyFirstCAIsTrusted: the CA file's first certificate is the only
// trust anchor; further certificates in it are ignored (fedmsg supports no
// intermediates and no bundles).
func TestOnlyFirstCAIsTrusted(t *testing.T) {
	dir := t.TempDir()
	ca, rogue := vectorBytes(t, "ca.crt"), vectorBytes(t, "rogue-ca.crt")
	good := vectorEnv(t, "signed/v01-ascii.json")
	rogueMsg := vectorEnv(t, "signed/n01-rogue.json")
	for name, c := range map[string]struct {
		file           []byte
		good, rogueErr error
	}{
		"ca then rogue": {append(append([]byte(nil), ca...), rogue...), nil, ErrUntrusted},
		"rogue then ca": {append(append([]byte(nil), rogue...), ca...), ErrUntrusted, nil},
	} {
		path := writeTemp(t, dir, strings.ReplaceAll(name, " ", "-")+".crt", c.file)
		v, err := NewValidator(Options{CACertLocation: path})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Validate(bg, good); !errors.Is(err, c.good) && !(c.good == nil && err == nil) {
			t.Errorf("%s: good message: %v, want %v", name, err, c.good)
		}
		if err := v.Validate(bg, rogueMsg); !errors.Is(err, c.rogueErr) && !(c.rogueErr == nil && err == nil) {
			t.Errorf("%s: rogue message: %v, want %v", name, err, c.rogueErr)
		}
	}
}
