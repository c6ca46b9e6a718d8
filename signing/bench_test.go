package signing

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"testing"
)

// The four benchmarks below feed the README's ratios: Validate against the
// raw RSA verification it cannot avoid, Sign against the raw RSA signature.
// All use v02-unicode and one goroutine.

func BenchmarkValidate(b *testing.B) {
	v := defaultValidator(b, nil)
	env := vectorEnv(b, "signed/v02-unicode.json")
	if err := v.Validate(bg, env); err != nil { // warm the caches
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := v.Validate(bg, env); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawRSAVerify(b *testing.B) {
	input := vectorBytes(b, "signed/v02-unicode.signing-input")
	env := vectorEnv(b, "signed/v02-unicode.json")
	sig, err := decodeBase64(nil, env["signature"].(string))
	if err != nil {
		b.Fatal(err)
	}
	block, _ := pem.Decode(vectorBytes(b, "bodhi-app01.example.com.crt"))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		b.Fatal(err)
	}
	pub := cert.PublicKey.(*rsa.PublicKey)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h := sha1.Sum(input)
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA1, h[:], sig); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	s := signerFor(b, "bodhi-app01.example.com")
	env := vectorEnv(b, "signed/v02-unicode.json")
	delete(env, "signature")
	delete(env, "certificate")
	delete(env, "crypto")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Sign(env); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawRSASign(b *testing.B) {
	input := vectorBytes(b, "signed/v02-unicode.signing-input")
	block, _ := pem.Decode(vectorBytes(b, filepath.FromSlash("bodhi-app01.example.com.key")))
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		b.Fatal(err)
	}
	key := k.(*rsa.PrivateKey)
	key.Precompute()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h := sha1.Sum(input)
		if _, err := rsa.SignPKCS1v15(nil, key, crypto.SHA1, h[:]); err != nil {
			b.Fatal(err)
		}
	}
}
