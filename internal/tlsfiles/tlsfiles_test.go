package tlsfiles

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofedmsg/fedmsg/internal/sharedtest"
)

// The x509 vectors of fedmsg hold a CA and RSA key pairs in PEM.
func TestConfigLoadsCAAndClientPair(t *testing.T) {
	dir := sharedtest.Dir(t, "fedmsg-x509")
	f := Files{
		CA:   filepath.Join(dir, "ca.crt"),
		Cert: filepath.Join(dir, "bodhi-app01.example.com.crt"),
		Key:  filepath.Join(dir, "bodhi-app01.example.com.key"),
	}
	c, err := f.Config("broker.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if c.RootCAs == nil || len(c.Certificates) != 1 || c.ServerName != "broker.example.com" || c.InsecureSkipVerify {
		t.Errorf("config %+v: want the CA as roots, one client certificate, verification on", c)
	}
}

func TestErrorsNameTheKeyAndFile(t *testing.T) {
	dir := sharedtest.Dir(t, "fedmsg-x509")
	notPEM := filepath.Join(t.TempDir(), "ca.txt")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o644)
	for name, tc := range map[string]struct {
		f    Files
		want []string
	}{
		"missing CA": {Files{CA: "/nonexistent/ca.pem", CAKey: "stomp_ssl_ca"}, []string{"stomp_ssl_ca", "/nonexistent/ca.pem"}},
		"CA not PEM": {Files{CA: notPEM, CAKey: "amqp_ssl_ca"}, []string{"amqp_ssl_ca", notPEM}},
		"half pair":  {Files{Cert: filepath.Join(dir, "ca.crt"), CertKey: "stomp_ssl_crt", KeyKey: "stomp_ssl_key"}, []string{"stomp_ssl_crt", "stomp_ssl_key"}},
		"key mismatch": {Files{
			Cert: filepath.Join(dir, "bodhi-app01.example.com.crt"), Key: filepath.Join(dir, "shell-app01.example.com.key"),
			CertKey: "amqp_ssl_crt", KeyKey: "amqp_ssl_key",
		}, []string{"amqp_ssl_crt", "amqp_ssl_key", "shell-app01.example.com.key"}},
	} {
		_, err := tc.f.Config("")
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not name %q", name, err, w)
			}
		}
	}
	if _, err := (Files{Key: "k.pem"}).Config(""); !errors.Is(err, ErrHalfPair) {
		t.Errorf("a key without a certificate: %v, want ErrHalfPair", err)
	}
}
