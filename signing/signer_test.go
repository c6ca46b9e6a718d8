package signing

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofedmsg/fedmsg/message"
)

func TestCertIndex(t *testing.T) {
	for _, c := range []struct{ prefix, name, host, want string }{
		{"shell", "relay_inbound", "app01", "shell.app01"},
		{"announce", "whatever", "app01", "announce.app01"},
		{"", "bodhi.app01", "app01", "bodhi.app01"},
		{"", "relay_inbound", "app01", "shell.app01"},
	} {
		if got := CertIndex(c.prefix, c.name, c.host); got != c.want {
			t.Errorf("CertIndex(%q, %q, %q) = %q, want %q", c.prefix, c.name, c.host, got, c.want)
		}
	}
}

// TestLoadX509Signer uses the vectors' directory as an ssldir with the
// manifest's certnames.
func TestLoadX509Signer(t *testing.T) {
	dir := x509Dir(t)
	certnames := map[string]string{
		"shell.app01": "shell-app01.example.com",
		"bodhi.app01": "bodhi-app01.example.com",
		"ghost.app01": "no-such-cert",
		"empty.app01": "",
	}
	s, err := LoadX509Signer(dir, certnames, CertIndex("shell", "relay_inbound", "app01"))
	if err != nil {
		t.Fatal(err)
	}
	if s.CommonName() != "shell-app01.example.com" {
		t.Errorf("CommonName %q", s.CommonName())
	}
	_, err = LoadX509Signer(dir, certnames, "announce.app01")
	if !errors.Is(err, ErrNoCertificate) || !strings.Contains(err.Error(), `"announce.app01"`) || !strings.Contains(err.Error(), "certnames") {
		t.Errorf("missing index: %v", err)
	}
	if _, err := LoadX509Signer(dir, certnames, "ghost.app01"); !errors.Is(err, ErrNoCertificate) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing files: %v", err)
	}
	if _, err := LoadX509Signer(dir, certnames, "empty.app01"); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("empty certname: %v", err)
	}
	if _, err := LoadX509Signer(dir, nil, "shell.app01"); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("nil certnames: %v", err)
	}
}

// TestSignerKeyFormats: PKCS#1 and PKCS#8 keys sign identically; a key of
// another certificate, an encrypted or non-RSA key, and files that are not
// PEM are refused with ErrNoCertificate.
func TestSignerKeyFormats(t *testing.T) {
	src := x509Dir(t)
	dir := t.TempDir()
	crt := filepath.Join(src, "shell-app01.example.com.crt")
	pkcs8Path := filepath.Join(src, "shell-app01.example.com.key")
	data, _ := os.ReadFile(pkcs8Path)
	block, _ := pem.Decode(data)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rk := k.(*rsa.PrivateKey)
	pkcs1Path := writeTemp(t, dir, "pkcs1.key", append([]byte("comment line\n"),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)})...))

	env := message.NewEnvelope("org.fedoraproject.dev.a.b", map[string]any{"x": "y"}, 7, "u", timeNow())
	s8, err := NewX509Signer(crt, pkcs8Path)
	if err != nil {
		t.Fatal(err)
	}
	s1, err := NewX509Signer(crt, pkcs1Path)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s8.Sign(env)
	b, _ := s1.Sign(env)
	if a["signature"] != b["signature"] || a["certificate"] != b["certificate"] {
		t.Error("PKCS#1 and PKCS#8 forms of one key sign differently")
	}

	_, ec := testKeys(t)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	for name, c := range map[string]struct{ crt, key string }{
		"key of another certificate": {crt, filepath.Join(src, "bodhi-app01.example.com.key")},
		"encrypted PKCS#8":           {crt, writeTemp(t, dir, "enc.key", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}))},
		"encrypted PKCS#1":           {crt, writeTemp(t, dir, "enc1.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: []byte{1}}))},
		"EC key":                     {crt, writeTemp(t, dir, "ec.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}))},
		"key not PEM":                {crt, writeTemp(t, dir, "junk.key", []byte("junk"))},
		"certificate not PEM":        {writeTemp(t, dir, "junk.crt", []byte("junk")), pkcs8Path},
		"certificate is a key":       {pkcs8Path, pkcs8Path},
		"missing key":                {crt, filepath.Join(dir, "none.key")},
		"missing certificate":        {filepath.Join(dir, "none.crt"), pkcs8Path},
	} {
		if _, err := NewX509Signer(c.crt, c.key); !errors.Is(err, ErrNoCertificate) {
			t.Errorf("%s: %v, want ErrNoCertificate", name, err)
		}
	}

	// Only the first certificate of the .crt file is used and re-encoded.
	crtData, _ := os.ReadFile(crt)
	other, _ := os.ReadFile(filepath.Join(src, "ca.crt"))
	multi := writeTemp(t, dir, "multi.crt", append(append([]byte("text before\n"), crtData...), other...))
	sm, err := NewX509Signer(multi, pkcs8Path)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := sm.Sign(env)
	if c["certificate"] != a["certificate"] {
		t.Error("multi-certificate .crt file: certificate field differs")
	}

	// SignBody refuses what is not an envelope; Sign refuses nil.
	for _, body := range []string{"", "[]", "{", `{"a":1}x`} {
		if _, err := s8.SignBody([]byte(body)); !errors.Is(err, ErrMalformed) {
			t.Errorf("SignBody(%q): %v", body, err)
		}
	}
	if _, err := s8.Sign(nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("Sign(nil): %v", err)
	}
	if _, err := s8.Sign(map[string]any{"x": struct{}{}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("Sign(unencodable): %v", err)
	}
	var _ Signer = s8
}

func TestStripCredentials(t *testing.T) {
	env := vectorEnv(t, "signed/v03-nested.json")
	out := StripCredentials(env)
	if _, ok := out["signature"]; ok {
		t.Error("signature kept")
	}
	if _, ok := out["certificate"]; ok {
		t.Error("certificate kept")
	}
	if out["crypto"] != "x509" {
		t.Error("crypto dropped")
	}
	got, _ := message.Canonical(out)
	if want := vectorBytes(t, "signed/v03-nested.signing-input"); string(got) != string(want) {
		t.Errorf("stripped envelope is not the signing input:\n%s\n%s", got, want)
	}
	// Deep: changing the copy leaves the original alone.
	out["msg"].(map[string]any)["new"] = true
	if _, ok := env["msg"].(map[string]any)["new"]; ok {
		t.Error("StripCredentials shares nested maps")
	}
	if _, ok := env["signature"]; !ok {
		t.Error("StripCredentials modified its argument")
	}
	if StripCredentials(nil) != nil {
		t.Error("StripCredentials(nil) != nil")
	}
}
